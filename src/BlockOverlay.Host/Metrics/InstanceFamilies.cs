using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// The per-instance families, each labelled <c>instance</c> (and <c>kind</c> for the flush
/// bytes). They exist, empty, whether or not a store is served, so a scraper always learns
/// of them; <see cref="CacheFamilies"/> fills them.
/// </summary>
internal sealed class InstanceFamilies
{
    /// <summary>The flush latency buckets, in seconds: 100 µs (a flush of nothing) to 10 s.</summary>
    public static readonly double[] FlushBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public InstanceFamilies(IMetricFactory factory)
    {
        Dirty = factory.CreateGauge("blockoverlay_instance_dirty_bytes", "Bytes written by clients and not yet in the store.", ["instance"]);
        Flushes = factory.CreateCounter("blockoverlay_instance_flushes_total", "Flushes (FLUSH, and FUA writes) of the instance.", ["instance"]);
        FlushBytes = factory.CreateCounter("blockoverlay_instance_flush_bytes_total",
            "Bytes written to the store by the instance's flushes: kind=data its blocks, kind=meta its journal commits (global mode: everyone's).",
            ["instance", "kind"]);
        FlushSeconds = factory.CreateHistogram("blockoverlay_instance_flush_seconds", "How long the instance's flushes took.",
            ["instance"], new HistogramConfiguration { Buckets = FlushBuckets });
        WriteBack = factory.CreateCounter("blockoverlay_instance_writeback_bytes_total", "Bytes of the instance written back in the background.", ["instance"]);
        Throttled = factory.CreateCounter("blockoverlay_instance_throttled_seconds_total",
            "Time the instance's writers waited for its write-back, past its dirty limit.", ["instance"]);
        LimitWait = factory.CreateCounter("blockoverlay_instance_limit_wait_seconds_total",
            "Time the instance's requests waited for admission under its IOPS and byte limits (apart from throttling for dirty memory).", ["instance"]);
        LimitWaits = factory.CreateCounter("blockoverlay_instance_limit_waits_total", "Requests of the instance that waited under its limits.", ["instance"]);
        IopsLimit = factory.CreateGauge("blockoverlay_instance_iops_limit", "The instance's limit in data requests per second (0: none).", ["instance"]);
        BpsLimit = factory.CreateGauge("blockoverlay_instance_bps_limit_bytes", "The instance's limit in bytes per second (0: none).", ["instance"]);
        Weight = factory.CreateGauge("blockoverlay_instance_weight", "The instance's weight (1 to 10000, default 100).", ["instance"]);
    }

    public Gauge Dirty { get; }

    public Counter Flushes { get; }

    public Counter FlushBytes { get; }

    public Histogram FlushSeconds { get; }

    public Counter WriteBack { get; }

    public Counter Throttled { get; }

    public Counter LimitWait { get; }

    public Counter LimitWaits { get; }

    public Gauge IopsLimit { get; }

    public Gauge BpsLimit { get; }

    public Gauge Weight { get; }

    /// <summary>Drops every series of the instance: it is gone, or its name now belongs to a new one.</summary>
    public void Remove(string instance)
    {
        Dirty.RemoveLabelled(instance);
        Flushes.RemoveLabelled(instance);
        FlushBytes.RemoveLabelled(instance, "data");
        FlushBytes.RemoveLabelled(instance, "meta");
        FlushSeconds.RemoveLabelled(instance);
        WriteBack.RemoveLabelled(instance);
        Throttled.RemoveLabelled(instance);
        LimitWait.RemoveLabelled(instance);
        LimitWaits.RemoveLabelled(instance);
        IopsLimit.RemoveLabelled(instance);
        BpsLimit.RemoveLabelled(instance);
        Weight.RemoveLabelled(instance);
    }
}
