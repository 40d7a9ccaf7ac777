namespace BlockOverlay.Host.Live;

/// <summary>
/// What <c>instance stat</c> shows (bytes unless said otherwise): the control socket's answer
/// and, as it is, the object <c>instance stat --json</c> prints. Limits are per second (0: none);
/// <c>LimitWaitSeconds</c> is time requests waited under them, apart from <c>ThrottledSeconds</c>
/// (writers waiting for write-back past the dirty limit).
/// </summary>
internal sealed record InstanceStat(
    string Name,
    long VirtualSize,
    string? Base,
    string FlushMode,
    bool Unclean,
    long Quota,
    IReadOnlyList<string> Allow,
    long IopsLimit,
    long BpsLimit,
    int Weight,
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
    double ThrottledSeconds,
    double LimitWaitSeconds,
    long LimitWaits) : InstanceResponse;
