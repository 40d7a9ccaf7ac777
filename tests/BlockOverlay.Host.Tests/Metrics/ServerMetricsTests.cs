using BlockOverlay.Host.Metrics;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// The NBD server's families on <c>/metrics</c>, read back by a real Prometheus parser:
/// the documented names and types, a sample for every command and error code, and each
/// counter's value in its own series (every value differs, so a mix-up shows).
/// </summary>
public class ServerMetricsTests
{
    private static readonly Dictionary<string, long> Requests = new()
    {
        ["read"] = 11, ["write"] = 12, ["disc"] = 13, ["flush"] = 14,
        ["trim"] = 15, ["cache"] = 16, ["write_zeroes"] = 17, ["block_status"] = 18,
    };

    private static readonly Dictionary<string, long> Errors = new()
    {
        ["EPERM"] = 1, ["EIO"] = 6, ["ENOMEM"] = 0, ["EINVAL"] = 3,
        ["ENOSPC"] = 2 + 5, ["EOVERFLOW"] = 4, ["ENOTSUP"] = 5, ["ESHUTDOWN"] = 0,
    };

    private const long Rejected = 1 + 3 + 2 + 4 + 5, Failed = 6 + 5;
    private const long BytesRead = (1L << 40) + 1, BytesWritten = 12_345;

    /// <summary>Counters with the values above: three connections opened, one closed.</summary>
    private static ServerCounters Recorded()
    {
        var counters = new ServerCounters();
        Repeat(3, counters.RecordConnectionOpened);
        counters.RecordConnectionClosed();
        Repeat(2, counters.RecordHandshakeTimeout);
        Repeat(7, counters.RecordConnectionRefused);
        counters.AddRequestBufferBytes(12_345);
        var commands = new Dictionary<string, NbdCommand>
        {
            ["read"] = NbdCommand.Read, ["write"] = NbdCommand.Write, ["disc"] = NbdCommand.Disconnect, ["flush"] = NbdCommand.Flush,
            ["trim"] = NbdCommand.Trim, ["cache"] = NbdCommand.Cache, ["write_zeroes"] = NbdCommand.WriteZeroes, ["block_status"] = NbdCommand.BlockStatus,
        };
        foreach (var (label, command) in commands)
        {
            Repeat(Requests[label], () => counters.RecordRequest(command));
        }

        Repeat(1, () => counters.RecordRejected(NbdError.NotPermitted));
        Repeat(3, () => counters.RecordRejected(NbdError.InvalidArgument));
        Repeat(2, () => counters.RecordRejected(NbdError.NoSpace));
        Repeat(4, () => counters.RecordRejected(NbdError.Overflow));
        Repeat(5, () => counters.RecordRejected(NbdError.NotSupported));
        Repeat(6, () => counters.RecordFailed(NbdError.IoError));
        Repeat(5, () => counters.RecordFailed(NbdError.NoSpace));
        counters.RecordRead(BytesRead);
        counters.RecordWritten(BytesWritten);
        return counters;
    }

    private static void Repeat(long times, Action action)
    {
        for (long i = 0; i < times; i++)
        {
            action();
        }
    }

    [Test]
    public async Task The_server_families_parse_with_every_series_and_its_value()
    {
        var families = PythonPrometheusParser.Parse(await RenderAsync(Recorded())).ToDictionary(f => f.Name);

        // The parser names a counter family without its _total suffix (its samples keep it).
        Assert.Multiple(() =>
        {
            AssertType(families, "blockoverlay_connections", "counter");
            AssertType(families, "blockoverlay_connections_open", "gauge");
            AssertType(families, "blockoverlay_handshake_timeouts", "counter");
            AssertType(families, "blockoverlay_connections_refused", "counter");
            AssertType(families, "blockoverlay_request_buffer_bytes", "gauge");
            AssertType(families, "blockoverlay_requests", "counter");
            AssertType(families, "blockoverlay_request_errors", "counter");
            AssertType(families, "blockoverlay_requests_rejected", "counter");
            AssertType(families, "blockoverlay_requests_failed", "counter");
            AssertType(families, "blockoverlay_read_bytes", "counter");
            AssertType(families, "blockoverlay_written_bytes", "counter");
        });
        Assert.Multiple(() =>
        {
            Assert.That(Single(families["blockoverlay_connections"], "blockoverlay_connections_total"), Is.EqualTo(3));
            Assert.That(Single(families["blockoverlay_connections_open"], "blockoverlay_connections_open"), Is.EqualTo(2));
            Assert.That(Single(families["blockoverlay_handshake_timeouts"], "blockoverlay_handshake_timeouts_total"), Is.EqualTo(2));
            Assert.That(Single(families["blockoverlay_connections_refused"], "blockoverlay_connections_refused_total"), Is.EqualTo(7));
            Assert.That(Single(families["blockoverlay_request_buffer_bytes"], "blockoverlay_request_buffer_bytes"), Is.EqualTo(12_345));
            Assert.That(ByLabel(families["blockoverlay_requests"], "blockoverlay_requests_total", "command"),
                Is.EquivalentTo(Requests.ToDictionary(r => r.Key, r => (double)r.Value)));
            Assert.That(ByLabel(families["blockoverlay_request_errors"], "blockoverlay_request_errors_total", "error"),
                Is.EquivalentTo(Errors.ToDictionary(e => e.Key, e => (double)e.Value)));
            Assert.That(Single(families["blockoverlay_requests_rejected"], "blockoverlay_requests_rejected_total"), Is.EqualTo(Rejected));
            Assert.That(Single(families["blockoverlay_requests_failed"], "blockoverlay_requests_failed_total"), Is.EqualTo(Failed));
            Assert.That(Single(families["blockoverlay_read_bytes"], "blockoverlay_read_bytes_total"), Is.EqualTo(BytesRead));
            Assert.That(Single(families["blockoverlay_written_bytes"], "blockoverlay_written_bytes_total"), Is.EqualTo(BytesWritten));
        });
    }

    [Test]
    public async Task A_fresh_server_shows_every_command_and_error_at_zero()
    {
        string text = await RenderAsync(new ServerCounters());

        Assert.Multiple(() =>
        {
            foreach (string command in Requests.Keys)
            {
                Assert.That(text, Does.Contain($"blockoverlay_requests_total{{command=\"{command}\"}} 0\n"));
            }

            foreach (string error in Errors.Keys)
            {
                Assert.That(text, Does.Contain($"blockoverlay_request_errors_total{{error=\"{error}\"}} 0\n"));
            }

            Assert.That(text, Does.Contain("blockoverlay_connections_open 0\n"));
        });
    }

    [Test]
    public async Task The_garbage_collectors_families_follow_the_runtime()
    {
        using var metrics = new ServerMetrics(cache: null, server: null);
        var before = PythonPrometheusParser.Parse(await metrics.RenderAsync()).ToDictionary(f => f.Name);
        GC.Collect(2, GCCollectionMode.Forced, blocking: true);
        var garbage = new byte[1 << 20];
        GC.KeepAlive(garbage);
        var after = PythonPrometheusParser.Parse(await metrics.RenderAsync()).ToDictionary(f => f.Name);

        Assert.Multiple(() =>
        {
            AssertType(after, "blockoverlay_gc_collections", "counter");
            AssertType(after, "blockoverlay_gc_pause_seconds", "counter");
            AssertType(after, "blockoverlay_gc_allocated_bytes", "counter");
        });
        var collectionsBefore = ByLabel(before["blockoverlay_gc_collections"], "blockoverlay_gc_collections_total", "generation");
        var collectionsAfter = ByLabel(after["blockoverlay_gc_collections"], "blockoverlay_gc_collections_total", "generation");
        Assert.Multiple(() =>
        {
            Assert.That(collectionsAfter.Keys, Is.EquivalentTo(new[] { "0", "1", "2" }));
            foreach (string generation in collectionsAfter.Keys)
            {
                Assert.That(collectionsAfter[generation], Is.GreaterThan(collectionsBefore[generation]), $"generation {generation}");
            }

            Assert.That(Single(after["blockoverlay_gc_pause_seconds"], "blockoverlay_gc_pause_seconds_total"),
                Is.GreaterThan(Single(before["blockoverlay_gc_pause_seconds"], "blockoverlay_gc_pause_seconds_total")));
            Assert.That(Single(after["blockoverlay_gc_allocated_bytes"], "blockoverlay_gc_allocated_bytes_total"),
                Is.GreaterThanOrEqualTo(Single(before["blockoverlay_gc_allocated_bytes"], "blockoverlay_gc_allocated_bytes_total") + (1 << 20)));
        });
    }

    private static async Task<string> RenderAsync(ServerCounters server)
    {
        using var metrics = new ServerMetrics(cache: null, server);
        return await metrics.RenderAsync();
    }

    private static void AssertType(Dictionary<string, ParsedFamily> families, string name, string type)
    {
        Assert.That(families, Does.ContainKey(name));
        Assert.That(families.GetValueOrDefault(name)?.Type, Is.EqualTo(type), name);
    }

    /// <summary>The value of a family's one sample of that name, without labels.</summary>
    private static double Single(ParsedFamily family, string sample)
    {
        var matches = family.Samples.Where(s => s.Name == sample).ToList();
        Assert.That(matches, Has.Count.EqualTo(1), sample);
        Assert.That(matches[0].Labels, Is.Empty, sample);
        return matches[0].Value;
    }

    /// <summary>Every sample of that name, by the value of its one label.</summary>
    private static Dictionary<string, double> ByLabel(ParsedFamily family, string sample, string label)
    {
        var samples = family.Samples.Where(s => s.Name == sample).ToList();
        Assert.That(samples.Select(s => s.Labels.Keys.Single()), Is.All.EqualTo(label), sample);
        return samples.ToDictionary(s => s.Labels[label], s => s.Value);
    }
}
