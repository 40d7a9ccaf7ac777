namespace BlockOverlay.Engine.Cache;

/// <summary>
/// The names of what a <see cref="WriteBackCache"/> records with System.Diagnostics.Metrics,
/// for an exporter to listen to. Each cache has its own <see cref="WriteBackCache.Meter"/>,
/// so a listener can pick the cache it serves when a process holds several (an offline view
/// beside the served store, or tests).
/// </summary>
public static class CacheMeter
{
    public const string Name = "BlockOverlay.Engine.Cache";

    /// <summary>A histogram: each flush's duration in seconds, tagged with <see cref="InstanceTag"/> and <see cref="IncarnationTag"/>.</summary>
    public const string FlushDuration = "blockoverlay.instance.flush.duration";

    /// <summary>The instance's name.</summary>
    public const string InstanceTag = "instance";

    /// <summary>The <see cref="InstanceCounters.Incarnation"/> of the counters that recorded it.</summary>
    public const string IncarnationTag = "incarnation";
}
