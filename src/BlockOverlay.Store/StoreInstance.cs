using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store;

/// <summary>
/// The store's state of one instance: its definition, its extent map and what its next
/// commit must carry. Owned by <see cref="UpperStore"/>; the Engine holds it as a handle.
/// </summary>
/// <remarks>
/// Locking: <see cref="Gate"/> guards the map and the lists below; it is held only for
/// in-memory work, never across I/O. Map entries not yet journaled are "uncommitted";
/// <see cref="FreeAfterCommit"/> holds store blocks that a durable mapping still names but
/// the current map no longer does: they become free once the commit that changes the
/// mapping is durable (invariant 4). <see cref="RetryRecords"/> holds records of a commit
/// whose journal write failed, so the next commit carries them again.
/// </remarks>
public sealed class StoreInstance
{
    private InstanceDefinition _definition;

    internal StoreInstance(InstanceDefinition definition) => _definition = definition;

    /// <summary>The definition; replaced whole (never edited) when the flush mode changes.</summary>
    public InstanceDefinition Definition
    {
        get => Volatile.Read(ref _definition);
        internal set => Volatile.Write(ref _definition, value);
    }

    public string Name => Definition.Name;

    /// <summary>Size of the virtual disk in blocks.</summary>
    public long Blocks => Definition.VirtualSize / Superblock.Size;

    internal Lock Gate { get; } = new();

    /// <summary>Held by a commit of this instance from taking its records until they are durable (or failed).</summary>
    internal SemaphoreSlim CommitLock { get; } = new(1, 1);

    internal ExtentMap Map { get; } = new();

    internal List<(long Start, long Length)> FreeAfterCommit { get; set; } = [];

    internal List<JournalRecord> RetryRecords { get; set; } = [];

    /// <summary>
    /// Completes when the last checkpoint that took this instance's uncommitted changes is
    /// durable: until then those changes are marked committed but are not yet on disk, and a
    /// commit must wait for it before it may report them durable.
    /// </summary>
    internal Task CheckpointDurable { get; set; } = Task.CompletedTask;

    internal bool Deleted { get; set; }

    /// <summary>Entries in this instance's map (each 24-48 bytes in memory, 32 in a checkpoint).</summary>
    public int ExtentCount
    {
        get
        {
            lock (Gate)
            {
                return Map.ExtentCount;
            }
        }
    }

    /// <summary>Upper blocks this instance holds in the store.</summary>
    public long UpperBlocks
    {
        get
        {
            lock (Gate)
            {
                return Map.UpperBlocks;
            }
        }
    }
}
