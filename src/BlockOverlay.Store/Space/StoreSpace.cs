using BlockOverlay.Store.Format;
using BlockOverlay.Store.Instances;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Space;

/// <summary>
/// Free space of the data region: hands out runs for data and for checkpoints, and takes
/// them back.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> A data block is free (here) or in use: named by a map, by a list of blocks
/// waiting for a commit, by a checkpoint, by a read's quarantine, or written and not yet mapped.
/// </para>
/// <para>
/// <b>Invariants.</b> Data allocations leave room for the next checkpoint (twice the maps' size
/// plus slack), or the store could never be closed again; each checkpoint part gets one
/// contiguous run, because it is read back in one piece. Blocks come back here only through
/// <see cref="ReadQuarantine"/>, never while a read may still use them.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> guards the allocator, for memory work only; no other lock is
/// taken inside it except the instance registry's (for the checkpoint estimate).
/// </para>
/// <para>
/// <b>Durability.</b> None of its own: recovery rebuilds free space as everything no map and no
/// checkpoint part names.
/// </para>
/// </remarks>
internal sealed class StoreSpace(BlockAllocator allocator, InstanceRegistry instances)
{
    private readonly Lock _lock = new();

    /// <summary>Blocks of the data region that are free.</summary>
    public long FreeBlocks
    {
        get
        {
            lock (_lock)
            {
                return allocator.FreeBlocks;
            }
        }
    }

    /// <summary>Runs for <paramref name="count"/> blocks of data, as contiguous as free space allows.</summary>
    /// <exception cref="StoreFullException">Not enough room beside the next checkpoint's.</exception>
    public List<(long Start, long Length)> Allocate(long count)
    {
        var runs = new List<(long, long)>();
        lock (_lock)
        {
            // Keep room for the next checkpoint, or the store could never be closed again.
            if (allocator.FreeBlocks - count < CheckpointReserveBlocks() || !allocator.TryAllocate(count, runs))
            {
                throw new StoreFullException($"the store is full: {count} blocks wanted, {allocator.FreeBlocks} free");
            }
        }

        return runs;
    }

    /// <summary>One contiguous run for a checkpoint: it is read back in one piece.</summary>
    public (long Start, long Length) AllocateForCheckpoint(long blocks)
    {
        var runs = new List<(long Start, long Length)>();
        lock (_lock)
        {
            if (!allocator.TryAllocate(blocks, runs) || runs.Count != 1)
            {
                runs.ForEach(r => allocator.Free(r.Start, r.Length));
                throw new StoreFullException($"no contiguous room for a checkpoint of {blocks} blocks");
            }
        }

        return runs[0];
    }

    /// <summary>Returns runs to free space at once; only <see cref="ReadQuarantine"/> calls this.</summary>
    public void Free(List<(long Start, long Length)> runs)
    {
        lock (_lock)
        {
            foreach (var (start, length) in runs)
            {
                allocator.Free(start, length);
            }
        }
    }

    /// <summary>
    /// Blocks the next checkpoint may need if every instance changed: the maps' and entries' size
    /// plus a block per instance (each segment rounds up to whole blocks) and every space page,
    /// twice over (the old parts stay until the new ones are durable), plus slack.
    /// </summary>
    /// <remarks>Reads each map's extent count without its gate (see <see cref="StoreInstance.ExtentCountEstimate"/>).</remarks>
    private long CheckpointReserveBlocks()
    {
        long extents = instances.Sum(i => i.ExtentCountEstimate + 4);
        long parts = instances.Sum(_ => 1) + (allocator.RegionEnd / CheckpointParts.BlocksPerSpacePage) + 1;
        return (2 * (Superblock.BlocksFor(CheckpointParts.RootHeaderBytes + (extents * 48)) + parts)) + 16;
    }
}
