namespace BlockOverlay.Host.Metrics;

/// <summary>
/// The metric types the exposition writes, as the <c># TYPE</c> line names them. Only the
/// three the server's counters need; summaries and untyped metrics are left out on purpose.
/// </summary>
internal enum MetricType
{
    /// <summary>A value that only goes up (resets on restart): bytes written, flushes.</summary>
    Counter,

    /// <summary>A value that goes up and down: dirty bytes, free space.</summary>
    Gauge,

    /// <summary>Observations counted into buckets by upper bound, with their sum: flush latency.</summary>
    Histogram,
}
