using BlockOverlay.Host.Metrics;
using Prometheus;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// The per-instance families as the server defines them, filled for a few instances — one of
/// them with a name full of characters that need escaping, one with values past 2^32 and
/// flushes on and past the bucket bounds — and read back by a real Prometheus parser, which
/// must find exactly the families, types, help, labels and values written. The parser is lax
/// (a line it cannot place becomes an "untyped" family of its own), so the test checks the
/// whole result, not just that parsing succeeded.
/// </summary>
public class RealParserTests
{
    private const string Awkward = "we\"ird\\name\nline2";

    private static readonly (string Name, long Dirty, long Flushes, long DataBytes, long MetaBytes, double[] Latencies)[] Instances =
    [
        ("web", 4 << 20, 12, 50_331_648, 98_304, [0.0002, 0.0004, 0.0004, 0.003, 0.75]),
        ("db", 64L << 30, 1_000_000, 1L << 50, 3_000_000, [0.0001, 10, 12.5, 20]),
        (Awkward, 0, 0, 0, 0, []),
    ];

    private static async Task<(string Text, InstanceFamilies Families)> ExpositionAsync()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var families = new InstanceFamilies(Prometheus.Metrics.WithCustomRegistry(registry));
        foreach (var i in Instances)
        {
            families.Dirty.WithLabels(i.Name).Set(i.Dirty);
            families.Flushes.WithLabels(i.Name).IncTo(i.Flushes);
            families.FlushBytes.WithLabels(i.Name, "data").IncTo(i.DataBytes);
            families.FlushBytes.WithLabels(i.Name, "meta").IncTo(i.MetaBytes);
            var histogram = families.FlushSeconds.WithLabels(i.Name);
            histogram.Publish();
            foreach (double latency in i.Latencies)
            {
                histogram.Observe(latency);
            }
        }

        families.Throttled.WithLabels("web").IncTo(1.25);
        families.LimitWait.WithLabels("web").IncTo(0.5);
        families.LimitWaits.WithLabels("web").IncTo(3);
        families.IopsLimit.WithLabels("web").Set(200);
        families.BpsLimit.WithLabels("web").Set(1 << 20);
        families.Weight.WithLabels("web").Set(300);
        using var text = new MemoryStream();
        await registry.CollectAndExportAsTextAsync(text);
        return (PrometheusConstants.ExportEncoding.GetString(text.ToArray()), families);
    }

    [Test]
    public async Task The_python_prometheus_parser_reads_back_exactly_what_was_written()
    {
        var (text, written) = await ExpositionAsync();
        var families = PythonPrometheusParser.Parse(text).ToDictionary(f => f.Name);

        Assert.That(families.Keys, Is.EquivalentTo(new[]
        {
            // The parser names a counter family without its _total suffix (its samples keep it).
            "blockoverlay_instance_dirty_bytes", "blockoverlay_instance_flushes", "blockoverlay_instance_flush_bytes",
            "blockoverlay_instance_flush_seconds", "blockoverlay_instance_writeback_bytes", "blockoverlay_instance_throttled_seconds",
            "blockoverlay_instance_limit_wait_seconds", "blockoverlay_instance_limit_waits", "blockoverlay_instance_iops_limit",
            "blockoverlay_instance_bps_limit_bytes", "blockoverlay_instance_weight",
        }), "no stray lines became families of their own");
        Assert.Multiple(() =>
        {
            Assert.That(families["blockoverlay_instance_dirty_bytes"].Type, Is.EqualTo("gauge"));
            Assert.That(families["blockoverlay_instance_flushes"].Type, Is.EqualTo("counter"));
            Assert.That(families["blockoverlay_instance_flush_seconds"].Type, Is.EqualTo("histogram"));
            Assert.That(families["blockoverlay_instance_flush_bytes"].Help, Is.EqualTo(written.FlushBytes.Help));
            Assert.That(families["blockoverlay_instance_writeback_bytes"].Samples, Is.Empty);
            Assert.That(families["blockoverlay_instance_writeback_bytes"].Type, Is.EqualTo("counter"));
        });

        foreach (var i in Instances)
        {
            AssertInstance(families, i.Name, i.Dirty, i.Flushes, i.DataBytes, i.MetaBytes, i.Latencies);
        }

        Assert.That(Value(families["blockoverlay_instance_throttled_seconds"], "blockoverlay_instance_throttled_seconds_total", ("instance", "web")),
            Is.EqualTo(1.25));
        Assert.That(Value(families["blockoverlay_instance_limit_wait_seconds"], "blockoverlay_instance_limit_wait_seconds_total", ("instance", "web")),
            Is.EqualTo(0.5), "waiting on limits is its own family, apart from throttling");
        Assert.That(Value(families["blockoverlay_instance_iops_limit"], "blockoverlay_instance_iops_limit", ("instance", "web")), Is.EqualTo(200));
    }

    private static void AssertInstance(Dictionary<string, ParsedFamily> families, string name,
        long dirty, long flushes, long dataBytes, long metaBytes, double[] latencies)
    {
        var instance = ("instance", name);
        var histogram = families["blockoverlay_instance_flush_seconds"];
        Assert.Multiple(() =>
        {
            Assert.That(Value(families["blockoverlay_instance_dirty_bytes"], "blockoverlay_instance_dirty_bytes", instance), Is.EqualTo(dirty));
            Assert.That(Value(families["blockoverlay_instance_flushes"], "blockoverlay_instance_flushes_total", instance), Is.EqualTo(flushes));
            Assert.That(Value(families["blockoverlay_instance_flush_bytes"], "blockoverlay_instance_flush_bytes_total", instance, ("kind", "data")),
                Is.EqualTo(dataBytes));
            Assert.That(Value(families["blockoverlay_instance_flush_bytes"], "blockoverlay_instance_flush_bytes_total", instance, ("kind", "meta")),
                Is.EqualTo(metaBytes));

            foreach (double bound in InstanceFamilies.FlushBuckets)
            {
                string le = bound.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
                Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_bucket", instance, ("le", le)),
                    Is.EqualTo(latencies.Count(l => l <= bound)), $"{name}: bucket le={le}");
            }

            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_bucket", instance, ("le", "+Inf")), Is.EqualTo(latencies.Length));
            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_count", instance), Is.EqualTo(latencies.Length));
            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_sum", instance), Is.EqualTo(latencies.Sum()).Within(1e-12));
        });
    }

    /// <summary>The value of the one sample with exactly these labels.</summary>
    private static double Value(ParsedFamily family, string sample, params (string Name, string Value)[] labels)
    {
        var wanted = labels.ToDictionary(l => l.Name, l => l.Value);
        var matches = family.Samples.Where(s => s.Name == sample && s.Labels.Count == wanted.Count && !wanted.Except(s.Labels).Any()).ToList();
        Assert.That(matches, Has.Count.EqualTo(1), $"{sample}{{{string.Join(",", labels)}}} in family {family.Name}");
        return matches[0].Value;
    }
}
