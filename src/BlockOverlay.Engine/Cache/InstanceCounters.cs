using System.Diagnostics;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// What one instance's flushes and write-back cost: the evidence for isolation (DESIGN
/// "How isolation is measured"). Thread-safe; monotonic since the instance was opened.
/// </summary>
public sealed class InstanceCounters
{
    private long _flushes, _flushDataBytes, _flushMetaBytes, _writeBackBytes, _throttledTicks;

    /// <summary>Flushes (FLUSH, and FUA writes, which flush) completed or failed.</summary>
    public long Flushes => Interlocked.Read(ref _flushes);

    /// <summary>Data bytes written to the store by this instance's flushes (in global mode: everyone's).</summary>
    public long FlushDataBytes => Interlocked.Read(ref _flushDataBytes);

    /// <summary>Journal bytes of this instance's flush commits (in global mode: everyone's).</summary>
    public long FlushMetaBytes => Interlocked.Read(ref _flushMetaBytes);

    /// <summary>Data bytes of this instance written back in the background.</summary>
    public long WriteBackBytes => Interlocked.Read(ref _writeBackBytes);

    /// <summary>Time this instance's writers spent throttled, waiting for their own write-back.</summary>
    public TimeSpan Throttled => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _throttledTicks));

    /// <summary>How long flushes took.</summary>
    public LatencyHistogram FlushSeconds { get; } = new();

    internal void AddFlush(TimeSpan took, long dataBytes, long metaBytes)
    {
        Interlocked.Increment(ref _flushes);
        Interlocked.Add(ref _flushDataBytes, dataBytes);
        Interlocked.Add(ref _flushMetaBytes, metaBytes);
        FlushSeconds.Observe(took);
    }

    internal void AddWriteBack(long bytes) => Interlocked.Add(ref _writeBackBytes, bytes);

    internal void AddThrottled(long stopwatchTicks) => Interlocked.Add(ref _throttledTicks, stopwatchTicks);
}

/// <summary>A latency histogram with fixed buckets (seconds), as Prometheus histograms want them.</summary>
public sealed class LatencyHistogram
{
    private static readonly double[] UpperBounds =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly long[] _counts = new long[UpperBounds.Length + 1]; // the last is "above every bound"
    private long _sumTicks;

    /// <summary>Bucket upper bounds in seconds, ascending (a last, unbounded bucket is implied).</summary>
    public static IReadOnlyList<double> Bounds => UpperBounds;

    /// <summary>Observations per bucket, not cumulative: one more than <see cref="Bounds"/>.</summary>
    public long[] Counts()
    {
        var copy = new long[_counts.Length];
        for (int i = 0; i < copy.Length; i++)
        {
            copy[i] = Interlocked.Read(ref _counts[i]);
        }

        return copy;
    }

    /// <summary>The sum of every observation.</summary>
    public TimeSpan Sum => TimeSpan.FromTicks(Interlocked.Read(ref _sumTicks));

    internal void Observe(TimeSpan value)
    {
        int bucket = Array.FindIndex(UpperBounds, bound => value.TotalSeconds <= bound);
        Interlocked.Increment(ref _counts[bucket < 0 ? UpperBounds.Length : bucket]);
        Interlocked.Add(ref _sumTicks, value.Ticks);
    }
}
