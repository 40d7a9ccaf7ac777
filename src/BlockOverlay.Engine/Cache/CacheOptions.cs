namespace BlockOverlay.Engine.Cache;

/// <summary>
/// Limits and thresholds of the write-back cache. The defaults suit a host with tens of GiB
/// of memory running a few dozen instances; every limit is per server process.
/// </summary>
public sealed record CacheOptions
{
    /// <summary>Dirty bytes of all instances together before the biggest holders are throttled (4 GiB).</summary>
    public long GlobalDirtyLimit { get; init; } = 4L << 30;

    /// <summary>Dirty bytes one instance may hold before its writers are throttled (1 GiB).</summary>
    public long InstanceDirtyLimit { get; init; } = 1L << 30;

    /// <summary>
    /// Fraction of a limit at which background write-back starts (like the kernel's
    /// dirty_background_ratio against dirty_ratio), so that a flush finds little left to do.
    /// </summary>
    public double BackgroundRatio { get; init; } = 0.25;

    /// <summary>Dirty data older than this is written back in the background (like dirty_expire).</summary>
    public TimeSpan MaxDirtyAge { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Blocks one background write moves: the bound on how long a flush can wait behind one (1 MiB).</summary>
    public int BackgroundBatchBlocks { get; init; } = 256;

    /// <summary>
    /// Blocks one flush write moves (1 MiB): with <see cref="WriteBacksInFlight"/>, what a
    /// neighbour's flush may wait behind (perf/RESULTS.md, "Notes on noisy-neighbour").
    /// </summary>
    public int FlushBatchBlocks { get; init; } = 256;

    /// <summary>
    /// Batches of one instance's write-back on their way to the store at once (2): all that a
    /// neighbour's flush can find of this instance ahead of it in the device's queue, however
    /// many FLUSH requests this instance sends together; two, so that a large flush keeps the
    /// device busy while it takes its next batch (InstanceCache, "Write-backs in flight").
    /// </summary>
    public int WriteBacksInFlight { get; init; } = 2;

    /// <summary>Journal fill at which a checkpoint is taken in the background, before a flush would find it full.</summary>
    public double CheckpointAtJournalFill { get; init; } = 0.5;

    /// <summary>How often the background writer looks for work when nothing wakes it.</summary>
    public TimeSpan BackgroundInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// Options for tests that count bytes exactly: nothing is written back until a flush or a
    /// throttled writer asks for it, and no checkpoint is taken in the background.
    /// </summary>
    public static CacheOptions FlushOnly { get; } = new()
    {
        BackgroundRatio = 1,
        MaxDirtyAge = Timeout.InfiniteTimeSpan,
        CheckpointAtJournalFill = 1,
    };

    /// <summary>Checks the options; returns the first problem, or null.</summary>
    public string? Problem() =>
        GlobalDirtyLimit < InstanceDirtyLimit ? "the global dirty limit is below the per-instance limit"
        : InstanceDirtyLimit < 1 << 20 ? "the per-instance dirty limit must be at least 1 MiB"
        : BackgroundRatio is <= 0 or > 1 ? "the background ratio must be in (0, 1]"
        : MaxDirtyAge <= TimeSpan.Zero && MaxDirtyAge != Timeout.InfiniteTimeSpan ? "the maximum dirty age must be positive"
        : BackgroundBatchBlocks < 1 || FlushBatchBlocks < 1 ? "batch sizes must be at least one block"
        : WriteBacksInFlight < 1 ? "at least one write-back of an instance must be allowed on its way"
        : CheckpointAtJournalFill is <= 0 or > 1 ? "the journal fill for checkpoints must be in (0, 1]"
        : BackgroundInterval <= TimeSpan.Zero ? "the background interval must be positive"
        : null;
}
