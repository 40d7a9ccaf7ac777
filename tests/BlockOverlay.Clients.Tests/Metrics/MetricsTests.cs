using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Metrics;

/// <summary>
/// <c>serve --metrics</c>: the documented metrics, read by the reference Prometheus parser
/// (python3-prometheus-client), show one instance's flush and not its neighbour's.
/// </summary>
public partial class MetricsTests
{
    private static readonly string[] Documented =
    [
        "blockoverlay_instance_dirty_bytes", "blockoverlay_instance_flushes_total", "blockoverlay_instance_flush_bytes_total",
        "blockoverlay_instance_flush_seconds", "blockoverlay_instance_writeback_bytes_total",
        "blockoverlay_instance_throttled_seconds_total", "blockoverlay_store_bytes_written_total",
    ];

    /// <remarks>
    /// When the script ends, the bystander's dirty data is written back (its client left):
    /// that is background work, counted as such, never as a flush.
    /// </remarks>
    [Test]
    public void Metrics_parse_with_the_reference_parser_and_count_each_instances_flush_separately()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.CreateInstance("flusher", null, "8M");
        ws.CreateInstance("bystander", null, "8M");
        using var server = StoreServer.Start(ws, tcp: false, "--metrics", "tcp:127.0.0.1:0");
        string url = MetricsUrl(server);
        StoreNbdsh.Run(server, """
            f, b = connect("flusher"), connect("bystander")
            b.pwrite(b"\x5a" * (256 * 1024), 0)
            f.pwrite(b"\xa5" * (64 * 1024), 0)
            f.flush()
            """);

        // Parsed by prometheus_client: one line per sample, "name{labels} value".
        var parsed = Tool.Run("/usr/bin/python3", ["-c", ParseScript, url], TimeSpan.FromSeconds(30));
        Assert.That(parsed.ExitCode, Is.Zero, $"the reference parser rejected /metrics:\n{parsed.Stderr}\n{server.Log}");
        var samples = parsed.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var families = samples.Where(l => l.StartsWith("family ", StringComparison.Ordinal)).Select(l => l[7..]).ToHashSet();
        Assert.Multiple(() =>
        {
            foreach (string name in Documented)
            {
                Assert.That(families, Does.Contain(name.EndsWith("_total", StringComparison.Ordinal) ? name[..^6] : name), $"family {name}");
            }

            Assert.That(samples, Does.Contain("blockoverlay_instance_flushes_total{instance=flusher} 1.0"));
            Assert.That(samples, Does.Contain("blockoverlay_instance_flushes_total{instance=bystander} 0.0"));
            Assert.That(samples, Does.Contain("blockoverlay_instance_flush_bytes_total{instance=flusher,kind=data} 65536.0"));
            Assert.That(samples, Does.Contain("blockoverlay_instance_flush_bytes_total{instance=bystander,kind=data} 0.0"));
            Assert.That(samples, Does.Contain("blockoverlay_instance_flush_seconds_count{instance=flusher} 1.0"));
            Assert.That(samples, Does.Contain("blockoverlay_store_bytes_written_total{reason=flush} 65536.0"));
        });
    }

    /// <summary>Prints each family name and each sample, labels sorted, as the reference parser read them.</summary>
    private const string ParseScript = """
        import sys, urllib.request
        from prometheus_client.parser import text_string_to_metric_families
        text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
        for family in text_string_to_metric_families(text):
            print("family", family.name)
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                print(f"{s.name}{{{labels}}} {float(s.value)}")
        """;

    private static string MetricsUrl(StoreServer server)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < deadline)
        {
            if (MetricsLine().Match(server.Log) is { Success: true } match)
            {
                return match.Groups[1].Value;
            }

            Thread.Sleep(20);
        }

        Assert.Fail($"the server never said where its metrics are\n{server.Log}");
        return "";
    }

    [GeneratedRegex(@"metrics at (http://\S+/metrics)")]
    private static partial Regex MetricsLine();
}
