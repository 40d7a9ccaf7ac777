using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Host.Live;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// The per-instance series of a served store, read back by the real parser: each flush lands
/// in its instance's histogram and counters alike, an instance made again under the same name
/// starts from zero, and a deleted one's series go.
/// </summary>
[TestFixture]
public sealed class CacheFamiliesTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-metrics-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public async Task Flushes_are_counted_per_instance_and_a_remade_instance_starts_from_zero()
    {
        await using var host = await OpenServedStoreAsync();
        using var metrics = new ServerMetrics(host.Cache, server: null);
        await RunOkAsync(host, new CreateRequest("a", Base: null, Size: "4M", FlushMode: null, Quota: null, Allow: []));
        await RunOkAsync(host, new CreateRequest("b", Base: null, Size: "4M", FlushMode: null, Quota: null, Allow: []));
        await WriteAndFlushAsync(host, "a", times: 2);

        var first = await ParseAsync(metrics);
        Assert.Multiple(() =>
        {
            Assert.That(first["blockoverlay_instance_flushes_total{instance=a}"], Is.EqualTo(2));
            Assert.That(first["blockoverlay_instance_flush_seconds_count{instance=a}"], Is.EqualTo(2));
            Assert.That(first["blockoverlay_instance_flush_seconds_bucket{instance=a,le=+Inf}"], Is.EqualTo(2));
            Assert.That(first["blockoverlay_instance_flush_seconds_sum{instance=a}"], Is.GreaterThan(0));
            Assert.That(first["blockoverlay_instance_flush_bytes_total{instance=a,kind=data}"], Is.EqualTo(2 * 4096));
            Assert.That(first["blockoverlay_instance_flush_seconds_count{instance=b}"], Is.Zero, "b never flushed: its histogram is there, empty");
            Assert.That(first["blockoverlay_instance_flushes_total{instance=b}"], Is.Zero);
        });

        // Deleted and made again between two scrapes: the new "a" flushes once.
        await RunOkAsync(host, new DeleteRequest("a", Force: false));
        await RunOkAsync(host, new CreateRequest("a", Base: null, Size: "4M", FlushMode: null, Quota: null, Allow: []));
        await WriteAndFlushAsync(host, "a", times: 1);
        await RunOkAsync(host, new DeleteRequest("b", Force: false));

        var second = await ParseAsync(metrics);
        Assert.Multiple(() =>
        {
            Assert.That(second["blockoverlay_instance_flushes_total{instance=a}"], Is.EqualTo(1));
            Assert.That(second["blockoverlay_instance_flush_seconds_count{instance=a}"], Is.EqualTo(1), "the histogram starts again with the counters");
            Assert.That(second["blockoverlay_instance_flush_bytes_total{instance=a,kind=data}"], Is.EqualTo(4096));
            Assert.That(second.Keys.Where(k => k.Contains("instance=b", StringComparison.Ordinal)), Is.Empty, "a deleted instance's series go");
        });
    }

    private async Task<StoreHost> OpenServedStoreAsync()
    {
        string store = Path.Combine(_directory, "store");
        await using (var device = await FileDevice.CreateAsync(store, 64L << 20))
        {
            await UpperStore.CreateAsync(device);
        }

        return await StoreHost.OpenAsync(store, CacheOptions.FlushOnly, new ExportCatalog(), NullLogger.Instance);
    }

    private static async Task RunOkAsync(StoreHost host, InstanceRequest request)
    {
        var response = await host.RunAsync(request, _ => { }, CancellationToken.None).WaitAsync(Wait);
        Assert.That(response.ExitCode, Is.Zero, $"{request}: {response}");
    }

    private static async Task WriteAndFlushAsync(StoreHost host, string name, int times)
    {
        var export = host.Served(name)!.Value.Export;
        for (int i = 0; i < times; i++)
        {
            await export.WriteAsync(i * 4096L, new byte[4096], WriteFlags.None);
            await export.FlushAsync();
        }
    }

    /// <summary>Every sample as <c>name{label=value,...}</c> (labels sorted, values unquoted), by the real parser.</summary>
    private static async Task<Dictionary<string, double>> ParseAsync(ServerMetrics metrics) =>
        PythonPrometheusParser.Parse(await metrics.RenderAsync())
            .SelectMany(f => f.Samples)
            .ToDictionary(s => s.Labels.Count == 0
                ? s.Name
                : $"{s.Name}{{{string.Join(",", s.Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"))}}}", s => s.Value);
}
