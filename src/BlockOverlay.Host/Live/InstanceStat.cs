namespace BlockOverlay.Host.Live;

/// <summary>What <c>instance stat</c> shows (bytes unless said otherwise).</summary>
internal sealed record InstanceStat(
    string Name,
    long VirtualSize,
    string? Base,
    string FlushMode,
    bool Unclean,
    long Quota,
    long QuotaUsedBytes,
    long UpperBytes,
    int Extents,
    bool Served,
    int Connections,
    long DirtyBytes,
    long Flushes,
    long FlushDataBytes,
    long FlushMetaBytes,
    double FlushSeconds,
    long WriteBackBytes,
    double ThrottledSeconds)
{
    /// <summary>One "key: value" line per field, for people.</summary>
    public string ToText() => string.Join('\n',
        $"name: {Name}",
        $"size: {VirtualSize}",
        $"base: {Base ?? "-"}",
        $"flush mode: {FlushMode}{(Unclean ? " (unclean: crashed while volatile)" : "")}",
        $"quota: {(Quota == 0 ? "none" : Quota.ToString(System.Globalization.CultureInfo.InvariantCulture))}",
        $"quota used: {QuotaUsedBytes} (upper bytes and dirty new space)",
        $"upper bytes: {UpperBytes}",
        $"extents: {Extents}",
        $"served: {(Served ? $"yes, {Connections} connection(s)" : "no")}",
        $"dirty bytes: {DirtyBytes}",
        $"flushes: {Flushes}",
        $"flush bytes: data {FlushDataBytes}, meta {FlushMetaBytes}",
        $"flush time: {FlushSeconds:F6} s",
        $"written back: {WriteBackBytes}",
        $"throttled: {ThrottledSeconds:F6} s") + "\n";
}
