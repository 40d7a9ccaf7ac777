using BlockOverlay.Host.Metrics;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// A realistic exposition — the counters of the flusher issue for a few instances, one of
/// them with a name full of characters that need escaping — read back by a real Prometheus
/// parser, which must find exactly the families, types, help, labels and values we wrote.
/// The parser is lax (a line it cannot place becomes an "untyped" family of its own), so
/// the test checks the whole result, not just that parsing succeeded.
/// </summary>
public class RealParserTests
{
    private const string Awkward = "we\"ird\\name\nline2";
    private static readonly double[] FlushBounds = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

    private static readonly (string Name, long Dirty, long Flushes, long DataBytes, long MetaBytes, long[] Latency, double LatencySum)[] Instances =
    [
        ("web", 4 << 20, 12, 50_331_648, 98_304, [0, 3, 6, 2, 1, 0, 0, 0, 0, 0], 0.0625),
        ("db", 64L << 30, 1_000_000, 1L << 50, 3_000_000, [10, 0, 0, 0, 0, 0, 0, 0, 0, 2], 12.5),
        (Awkward, 0, 0, 0, 0, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0),
    ];

    private static string Exposition()
    {
        var text = new PrometheusText();
        text.Family("blockoverlay_instance_dirty_bytes", MetricType.Gauge, "Bytes written to the instance and not yet written back.");
        foreach (var i in Instances)
        {
            text.Sample(i.Dirty, ("instance", i.Name));
        }

        text.Family("blockoverlay_instance_flushes_total", MetricType.Counter, "FLUSH requests (and FUA writes) completed.");
        foreach (var i in Instances)
        {
            text.Sample(i.Flushes, ("instance", i.Name));
        }

        text.Family("blockoverlay_instance_flush_bytes_total", MetricType.Counter, "Bytes written by the instance's flushes: \\data\\ and\nmeta.");
        foreach (var i in Instances)
        {
            text.Sample(i.DataBytes, ("instance", i.Name), ("kind", "data"));
            text.Sample(i.MetaBytes, ("instance", i.Name), ("kind", "meta"));
        }

        text.Family("blockoverlay_instance_flush_seconds", MetricType.Histogram, "Flush latency.");
        foreach (var i in Instances)
        {
            text.Histogram(new HistogramSnapshot(FlushBounds, i.Latency, i.LatencySum), ("instance", i.Name));
        }

        text.Family("blockoverlay_instance_throttled_seconds_total", MetricType.Counter, "Time writers waited for their own write-back.");
        text.Sample(1.25, ("instance", "web"));
        text.Family("blockoverlay_store_free_bytes", MetricType.Gauge, "Nothing measured yet.");
        return text.ToString();
    }

    [Test]
    public void The_python_prometheus_parser_reads_back_exactly_what_was_written()
    {
        var families = PythonPrometheusParser.Parse(Exposition()).ToDictionary(f => f.Name);

        Assert.That(families.Keys, Is.EquivalentTo(new[]
        {
            // The parser names a counter family without its _total suffix (its samples keep it).
            "blockoverlay_instance_dirty_bytes", "blockoverlay_instance_flushes", "blockoverlay_instance_flush_bytes",
            "blockoverlay_instance_flush_seconds", "blockoverlay_instance_throttled_seconds", "blockoverlay_store_free_bytes",
        }), "no stray lines became families of their own");
        Assert.Multiple(() =>
        {
            Assert.That(families["blockoverlay_instance_dirty_bytes"].Type, Is.EqualTo("gauge"));
            Assert.That(families["blockoverlay_instance_flushes"].Type, Is.EqualTo("counter"));
            Assert.That(families["blockoverlay_instance_flush_seconds"].Type, Is.EqualTo("histogram"));
            Assert.That(families["blockoverlay_instance_flush_bytes"].Help, Is.EqualTo("Bytes written by the instance's flushes: \\data\\ and\nmeta."));
            Assert.That(families["blockoverlay_store_free_bytes"].Samples, Is.Empty);
            Assert.That(families["blockoverlay_store_free_bytes"].Type, Is.EqualTo("gauge"));
        });

        foreach (var i in Instances)
        {
            AssertInstance(families, i.Name, i.Dirty, i.Flushes, i.DataBytes, i.MetaBytes, i.Latency, i.LatencySum);
        }

        Assert.That(Value(families["blockoverlay_instance_throttled_seconds"], "blockoverlay_instance_throttled_seconds_total", ("instance", "web")),
            Is.EqualTo(1.25));
    }

    private static void AssertInstance(Dictionary<string, ParsedFamily> families, string name,
        long dirty, long flushes, long dataBytes, long metaBytes, long[] latency, double latencySum)
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

            long cumulative = 0;
            for (int b = 0; b < FlushBounds.Length; b++)
            {
                cumulative += latency[b];
                Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_bucket", instance, ("le", PrometheusText.FormatValue(FlushBounds[b]))),
                    Is.EqualTo(cumulative), $"{name}: bucket le={FlushBounds[b]}");
            }

            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_bucket", instance, ("le", "+Inf")), Is.EqualTo(latency.Sum()));
            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_count", instance), Is.EqualTo(latency.Sum()));
            Assert.That(Value(histogram, "blockoverlay_instance_flush_seconds_sum", instance), Is.EqualTo(latencySum));
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
