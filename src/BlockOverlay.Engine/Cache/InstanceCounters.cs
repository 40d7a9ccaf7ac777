using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// What one instance's flushes and write-back cost: the evidence for isolation (DESIGN
/// "How isolation is measured"). Thread-safe; monotonic since the instance was opened.
/// Each flush's duration is also recorded on the cache's <see cref="CacheMeter"/>, where an
/// exporter turns it into a distribution (the engine keeps no buckets).
/// </summary>
public sealed class InstanceCounters
{
    private static long s_incarnations;

    private readonly Histogram<double> _flushDuration;
    private readonly KeyValuePair<string, object?>[] _flushTags;
    private long _flushes, _flushDataBytes, _flushMetaBytes, _writeBackBytes, _throttledTicks, _flushTicks, _limitWaitTicks, _limitWaits;

    internal InstanceCounters(string instance, Histogram<double> flushDuration)
    {
        Incarnation = Interlocked.Increment(ref s_incarnations);
        _flushDuration = flushDuration;
        _flushTags = [new(CacheMeter.InstanceTag, instance), new(CacheMeter.IncarnationTag, Incarnation)];
    }

    /// <summary>
    /// Tells these counters from those of an earlier or later opening of an instance of the
    /// same name (a delete and a create in between): increasing within the process.
    /// </summary>
    public long Incarnation { get; }

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

    /// <summary>Time this instance's requests waited for admission under its IOPS and byte limits (apart from <see cref="Throttled"/>).</summary>
    public TimeSpan LimitWait => TimeSpan.FromTicks(Interlocked.Read(ref _limitWaitTicks));

    /// <summary>Requests that waited for admission under the instance's limits.</summary>
    public long LimitWaits => Interlocked.Read(ref _limitWaits);

    /// <summary>How long the flushes took, all together.</summary>
    public TimeSpan FlushTime => TimeSpan.FromTicks(Interlocked.Read(ref _flushTicks));

    internal void AddFlush(TimeSpan took, long dataBytes, long metaBytes)
    {
        Interlocked.Increment(ref _flushes);
        Interlocked.Add(ref _flushDataBytes, dataBytes);
        Interlocked.Add(ref _flushMetaBytes, metaBytes);
        Interlocked.Add(ref _flushTicks, took.Ticks);
        _flushDuration.Record(took.TotalSeconds, _flushTags);
    }

    internal void AddWriteBack(long bytes) => Interlocked.Add(ref _writeBackBytes, bytes);

    internal void AddThrottled(long stopwatchTicks) => Interlocked.Add(ref _throttledTicks, stopwatchTicks);

    internal void AddLimitWait(TimeSpan waited)
    {
        Interlocked.Increment(ref _limitWaits);
        Interlocked.Add(ref _limitWaitTicks, waited.Ticks);
    }
}
