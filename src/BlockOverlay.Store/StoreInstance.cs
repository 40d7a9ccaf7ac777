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

    /// <summary>
    /// Blocks promised to this instance's data that is held elsewhere and is not yet upper data
    /// (a write-back cache's new dirty blocks); in memory only. See <see cref="TryReserve"/>.
    /// </summary>
    internal long ReservedBlocks { get; set; }

    /// <summary>
    /// Reserves room for <paramref name="blocks"/> blocks of this instance's data that is held
    /// elsewhere and will become upper data later (a write-back cache's dirty blocks that are
    /// not upper blocks yet), if its footprint (upper plus reserved blocks) stays within its
    /// quota; otherwise reserves nothing and returns false. Always true without a quota.
    /// </summary>
    /// <remarks>
    /// A reservation turns into an upper block in the same step as
    /// <see cref="UpperStore.WriteBlocksAsync"/> maps the block (its <c>reserved</c> argument),
    /// under <see cref="Gate"/>: the footprint never counts a block twice, or not at all, while
    /// it moves from the cache to the store.
    /// </remarks>
    public bool TryReserve(long blocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(blocks);
        long quota = Definition.Quota / Superblock.Size;
        lock (Gate)
        {
            if (quota != 0 && Map.UpperBlocks + ReservedBlocks + blocks > quota)
            {
                return false;
            }

            ReservedBlocks += blocks;
            return true;
        }
    }

    /// <summary>
    /// Reserves room for blocks already accepted, whatever the quota says: dirty data written
    /// before the instance had a quota still counts against one set later.
    /// </summary>
    public void Reserve(long blocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(blocks);
        lock (Gate)
        {
            ReservedBlocks += blocks;
        }
    }

    /// <summary>Gives back reservations whose data went away unwritten (trimmed or zeroed).</summary>
    public void Release(long blocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(blocks);
        lock (Gate)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(blocks, ReservedBlocks);
            ReservedBlocks -= blocks;
        }
    }

    /// <summary>What counts against the quota: upper blocks plus reserved blocks, read at one instant.</summary>
    public long FootprintBlocks
    {
        get
        {
            lock (Gate)
            {
                return Map.UpperBlocks + ReservedBlocks;
            }
        }
    }
}
