using BlockOverlay.Host.Metrics;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// The writer's output byte for byte on small cases, and every mistake it must refuse
/// rather than write (a scraper rejects a whole exposition for one bad line).
/// </summary>
public class PrometheusTextTests
{
    [Test]
    public void A_counter_and_a_gauge_with_labels_are_written_exactly()
    {
        var text = new PrometheusText();
        text.Family("blockoverlay_instance_flushes_total", MetricType.Counter, "Flushes of the instance.");
        text.Sample(3, ("instance", "web"));
        text.Sample(0, ("instance", "db"));
        text.Family("blockoverlay_instance_dirty_bytes", MetricType.Gauge, "Dirty bytes.");
        text.Sample(4096, ("instance", "web"), ("kind", "data"));
        text.Family("up", MetricType.Gauge, "Always 1.");
        text.Sample(1.0);

        Assert.That(text.ToString(), Is.EqualTo(
            "# HELP blockoverlay_instance_flushes_total Flushes of the instance.\n" +
            "# TYPE blockoverlay_instance_flushes_total counter\n" +
            "blockoverlay_instance_flushes_total{instance=\"web\"} 3\n" +
            "blockoverlay_instance_flushes_total{instance=\"db\"} 0\n" +
            "# HELP blockoverlay_instance_dirty_bytes Dirty bytes.\n" +
            "# TYPE blockoverlay_instance_dirty_bytes gauge\n" +
            "blockoverlay_instance_dirty_bytes{instance=\"web\",kind=\"data\"} 4096\n" +
            "# HELP up Always 1.\n" +
            "# TYPE up gauge\n" +
            "up 1\n"));
    }

    [Test]
    public void A_family_without_samples_still_has_its_help_and_type()
    {
        var text = new PrometheusText();
        text.Family("blockoverlay_instance_dirty_bytes", MetricType.Gauge, "Dirty bytes.");

        Assert.That(text.ToString(), Is.EqualTo(
            "# HELP blockoverlay_instance_dirty_bytes Dirty bytes.\n" +
            "# TYPE blockoverlay_instance_dirty_bytes gauge\n"));
    }

    [Test]
    public void A_histogram_is_written_with_cumulative_buckets_an_inf_bucket_sum_and_count()
    {
        var text = new PrometheusText();
        text.Family("blockoverlay_instance_flush_seconds", MetricType.Histogram, "Flush latency.");
        text.Histogram(new HistogramSnapshot([0.001, 0.01, 1], [2, 0, 5, 1], sum: 2.5), ("instance", "web"));

        Assert.That(text.ToString(), Is.EqualTo(
            "# HELP blockoverlay_instance_flush_seconds Flush latency.\n" +
            "# TYPE blockoverlay_instance_flush_seconds histogram\n" +
            "blockoverlay_instance_flush_seconds_bucket{instance=\"web\",le=\"0.001\"} 2\n" +
            "blockoverlay_instance_flush_seconds_bucket{instance=\"web\",le=\"0.01\"} 2\n" +
            "blockoverlay_instance_flush_seconds_bucket{instance=\"web\",le=\"1\"} 7\n" +
            "blockoverlay_instance_flush_seconds_bucket{instance=\"web\",le=\"+Inf\"} 8\n" +
            "blockoverlay_instance_flush_seconds_sum{instance=\"web\"} 2.5\n" +
            "blockoverlay_instance_flush_seconds_count{instance=\"web\"} 8\n"));
    }

    [Test]
    public void A_histogram_without_labels_or_bounds_has_only_the_inf_bucket()
    {
        var text = new PrometheusText();
        text.Family("h", MetricType.Histogram, "H.");
        text.Histogram(new HistogramSnapshot([], [4], sum: 10));

        Assert.That(text.ToString(), Is.EqualTo(
            "# HELP h H.\n# TYPE h histogram\n" +
            "h_bucket{le=\"+Inf\"} 4\nh_sum 10\nh_count 4\n"));
    }

    [Test]
    public void Label_values_escape_backslash_quote_and_newline_and_help_escapes_backslash_and_newline()
    {
        var text = new PrometheusText();
        text.Family("m", MetricType.Gauge, "a \\ b\nc \"d\"");
        text.Sample(1, ("path", "C:\\x \"y\"\nz"));

        Assert.That(text.ToString(), Is.EqualTo(
            "# HELP m a \\\\ b\\nc \"d\"\n" +
            "# TYPE m gauge\n" +
            "m{path=\"C:\\\\x \\\"y\\\"\\nz\"} 1\n"));
    }

    [TestCase(double.PositiveInfinity, "+Inf")]
    [TestCase(double.NegativeInfinity, "-Inf")]
    [TestCase(double.NaN, "NaN")]
    [TestCase(0.0, "0")]
    [TestCase(-0.0, "0")]
    [TestCase(-3.0, "-3")]
    [TestCase(1e15, "1000000000000000")]
    [TestCase(1125899906842624.0, "1125899906842624")]
    [TestCase(9.2e18, "9200000000000000000")]
    [TestCase(1e300, "1E+300")]
    [TestCase(0.1, "0.1")]
    [TestCase(1.0 / 3, "0.3333333333333333")]
    [TestCase(2.5e-7, "2.5E-07")]
    public void Values_are_formatted_in_the_invariant_culture_with_integers_in_full(double value, string expected)
    {
        Assert.That(PrometheusText.FormatValue(value), Is.EqualTo(expected));
    }

    [Test]
    public void Long_samples_are_exact_beyond_the_precision_of_a_double()
    {
        var text = new PrometheusText();
        text.Family("c_total", MetricType.Counter, "C.");
        text.Sample(long.MaxValue);

        Assert.That(text.ToString(), Does.EndWith("\nc_total 9223372036854775807\n"));
    }

    [TestCase("")]
    [TestCase("1abc")]
    [TestCase("has-dash")]
    [TestCase("has space")]
    [TestCase("é")]
    public void Bad_metric_names_are_refused(string name)
    {
        Assert.Throws<ArgumentException>(() => new PrometheusText().Family(name, MetricType.Gauge, "x"));
    }

    [TestCase("ns:sub_name")]
    [TestCase(":leading_colon")]
    [TestCase("_x9")]
    public void Metric_names_may_hold_colons_underscores_and_digits(string name)
    {
        var text = new PrometheusText();
        text.Family(name, MetricType.Gauge, "x");
        Assert.That(text.ToString(), Does.StartWith($"# HELP {name} x\n"));
    }

    [TestCase("")]
    [TestCase("a:b")]
    [TestCase("9x")]
    [TestCase("__reserved")]
    [TestCase("a-b")]
    public void Bad_label_names_are_refused(string name)
    {
        var text = new PrometheusText();
        text.Family("m", MetricType.Gauge, "x");
        Assert.Throws<ArgumentException>(() => text.Sample(1, (name, "v")));
        Assert.That(text.ToString(), Does.Not.Contain("m{"), "nothing written for a refused sample");
    }

    [Test]
    public void A_label_given_twice_is_refused()
    {
        var text = new PrometheusText();
        text.Family("m", MetricType.Gauge, "x");
        Assert.Throws<ArgumentException>(() => text.Sample(1, ("a", "1"), ("a", "2")));
    }

    [Test]
    public void A_histogram_cannot_be_given_its_own_le_label()
    {
        var text = new PrometheusText();
        text.Family("h", MetricType.Histogram, "x");
        Assert.Throws<ArgumentException>(() => text.Histogram(new HistogramSnapshot([1], [0, 0], 0), ("le", "1")));
    }

    [Test]
    public void A_family_written_twice_is_refused()
    {
        var text = new PrometheusText();
        text.Family("m", MetricType.Gauge, "x");
        Assert.Throws<ArgumentException>(() => text.Family("m", MetricType.Counter, "y"));
    }

    [Test]
    public void Samples_must_match_their_family()
    {
        var text = new PrometheusText();
        Assert.Throws<InvalidOperationException>(() => text.Sample(1), "no family yet");
        text.Family("h", MetricType.Histogram, "x");
        Assert.Throws<InvalidOperationException>(() => text.Sample(1), "plain sample in a histogram");
        text.Family("g", MetricType.Gauge, "x");
        Assert.Throws<InvalidOperationException>(() => text.Histogram(new HistogramSnapshot([], [1], 1)), "histogram in a gauge");
    }

    [Test]
    public void Counters_refuse_negative_and_nan_values_and_gauges_take_them()
    {
        var text = new PrometheusText();
        text.Family("c_total", MetricType.Counter, "x");
        Assert.Throws<ArgumentOutOfRangeException>(() => text.Sample(-1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => text.Sample(-1L));
        Assert.Throws<ArgumentOutOfRangeException>(() => text.Sample(double.NaN));
        text.Family("g", MetricType.Gauge, "x");
        text.Sample(-1.5);
        text.Sample(double.NaN);
        Assert.That(text.ToString(), Does.EndWith("g -1.5\ng NaN\n"));
    }

    [Test]
    public void Histogram_snapshots_refuse_inconsistent_shapes()
    {
        Assert.Multiple(() =>
        {
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([1, 2], [1, 2], 0), "one count too few");
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([2, 1], [0, 0, 0], 0), "decreasing bounds");
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([1, 1], [0, 0, 0], 0), "repeated bound");
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([1, double.PositiveInfinity], [0, 0, 0], 0), "explicit +Inf");
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([double.NaN], [0, 0], 0), "NaN bound");
            Assert.Throws<ArgumentException>(() => _ = new HistogramSnapshot([1], [0, -1], 0), "negative count");
        });
    }

    [Test]
    public void A_histogram_snapshot_is_a_copy_whose_count_is_the_sum_of_its_buckets()
    {
        double[] bounds = [1, 2];
        long[] counts = [3, 4, 5];
        var snapshot = new HistogramSnapshot(bounds, counts, 20);
        bounds[0] = 0.5;
        counts[0] = 100;

        Assert.Multiple(() =>
        {
            Assert.That(snapshot.UpperBounds, Is.EqualTo(new[] { 1.0, 2.0 }));
            Assert.That(snapshot.BucketCounts, Is.EqualTo(new long[] { 3, 4, 5 }));
            Assert.That(snapshot.Count, Is.EqualTo(12));
        });
    }
}
