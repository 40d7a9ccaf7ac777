using System.Globalization;
using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// One instance's flush counters and dirty bytes, scraped from the server's Prometheus text
/// at http://127.0.0.1:PORT/metrics (the server runs with <c>--metrics tcp:127.0.0.1:0</c>
/// and logs the port it got); with them, what the whole store wrote to its device.
/// </summary>
internal sealed partial record InstanceCounters(long Flushes, long FlushDataBytes, long FlushMetaBytes, long WriteBackBytes, long DirtyBytes)
{
    /// <summary>What <c>serve</c> needs to serve metrics on a port of its choosing.</summary>
    public static readonly string[] ServeArguments = ["--metrics", "tcp:127.0.0.1:0"];

    private static readonly TimeSpan ScrapeTimeout = TimeSpan.FromSeconds(10);

    private static readonly string[] StoreWriteReasons = ["flush", "background", "journal", "metadata", "checkpoint"];

    /// <summary>The counters of every instance, by name.</summary>
    public static IReadOnlyDictionary<string, InstanceCounters> Scrape(StoreServer server, IEnumerable<string> instances, Evidence evidence) =>
        ScrapeWithStore(server, instances, evidence).Instances;

    /// <summary>
    /// From one scrape: the counters of every instance, and every byte the store has written to
    /// its device (<c>blockoverlay_store_bytes_written_total</c>, summed over its reasons).
    /// </summary>
    public static (IReadOnlyDictionary<string, InstanceCounters> Instances, long StoreBytesWritten) ScrapeWithStore(
        StoreServer server, IEnumerable<string> instances, Evidence evidence)
    {
        var samples = Parse(Fetch(server, evidence));
        long Sample(string name, string labels)
        {
            Assert.That(samples, Does.ContainKey(name + labels), () => $"/metrics has no sample {name}{labels}\n{evidence}");
            return (long)samples[name + labels];
        }

        var counters = instances.ToDictionary(
            i => i,
            i => new InstanceCounters(
                Sample("blockoverlay_instance_flushes_total", $"{{instance=\"{i}\"}}"),
                Sample("blockoverlay_instance_flush_bytes_total", $"{{instance=\"{i}\",kind=\"data\"}}"),
                Sample("blockoverlay_instance_flush_bytes_total", $"{{instance=\"{i}\",kind=\"meta\"}}"),
                Sample("blockoverlay_instance_writeback_bytes_total", $"{{instance=\"{i}\"}}"),
                Sample("blockoverlay_instance_dirty_bytes", $"{{instance=\"{i}\"}}")));
        return (counters, StoreWriteReasons.Sum(reason => Sample("blockoverlay_store_bytes_written_total", $"{{reason=\"{reason}\"}}")));
    }

    private static string Fetch(StoreServer server, Evidence evidence)
    {
        // The line is logged before the server accepts, but reaches the test's log reader a little later.
        var address = MetricsAddress().Match(server.Log);
        for (var deadline = DateTime.UtcNow.AddSeconds(5); !address.Success && DateTime.UtcNow < deadline; address = MetricsAddress().Match(server.Log))
        {
            Thread.Sleep(20);
        }

        Assert.That(address.Success, Is.True, () => $"the server did not log where it serves metrics\n{evidence}");
        using var client = new HttpClient { Timeout = ScrapeTimeout };
        return client.GetStringAsync(new Uri($"http://{address.Groups[1].Value}/metrics")).GetAwaiter().GetResult();
    }

    /// <summary>Every sample line as "name{labels}" (labels as the server wrote them) → value.</summary>
    private static Dictionary<string, double> Parse(string text) =>
        text.Split('\n')
            .Select(line => SampleLine().Match(line))
            .Where(m => m.Success)
            .ToDictionary(m => m.Groups[1].Value, m => double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));

    [GeneratedRegex(@"metrics at http://(127\.0\.0\.1:\d+)/metrics")]
    private static partial Regex MetricsAddress();

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")]
    private static partial Regex SampleLine();
}
