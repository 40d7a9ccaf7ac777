namespace BlockOverlay.Store.Maps;

/// <summary>
/// Free space of the store's data region, in 4 KiB blocks, kept as runs of free blocks.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>States of a block.</b> Free or allocated; the region starts all free. Only free space
/// is recorded, as runs; an allocated block is anything in the region that no run covers.
/// </para>
/// <para>
/// <b>Invariants.</b> Runs lie inside the region, never overlap, never have length 0 and are
/// maximal: no two touch (<see cref="Free"/> merges with both neighbours). The sum of their
/// lengths is <see cref="FreeBlocks"/>.
/// </para>
/// <para>
/// <b>Policy of <see cref="TryAllocate"/></b>, in order:
/// (1) the free run at the cursor (the block after the last allocation) when it holds the
/// whole request from the cursor on, so one writer's consecutive allocations are
/// contiguous and its sequential writes stay one extent;
/// (2) otherwise best fit: the shortest run that holds the whole request (lowest address among
/// equals), found in O(log n) in the index by size. Best fit keeps long runs long for later
/// large requests, and a bounded first-fit scan could miss the one run that fits;
/// (3) otherwise (no run is long enough, so every run it takes is used whole but the last)
/// whole runs in address order from the cursor, wrapping round to the region's start.
/// The request is all or nothing: it is refused up front, changing nothing, when fewer
/// blocks are free. Each step costs O(log n) per run taken, never anything in proportion
/// to the region's size.
/// </para>
/// <para>
/// <b>Memory.</b> Two red-black tree nodes per free run (one per index, about 56 bytes each),
/// so about 112 bytes per run and nothing per block: a 2^32-block region costs what its
/// fragmentation costs.
/// </para>
/// <para>
/// <b>Locking.</b> None: not thread-safe. The store serializes every call.
/// </para>
/// </remarks>
public sealed class BlockAllocator
{
    private static readonly IComparer<FreeRun> ByStart =
        Comparer<FreeRun>.Create((a, b) => a.Start.CompareTo(b.Start));

    private static readonly IComparer<FreeRun> ByLength =
        Comparer<FreeRun>.Create((a, b) => a.Length != b.Length ? a.Length.CompareTo(b.Length) : a.Start.CompareTo(b.Start));

    private readonly SortedSet<FreeRun> _byStart = new(ByStart);
    private readonly SortedSet<FreeRun> _byLength = new(ByLength);
    private readonly long _regionStart;
    private readonly long _regionEnd;
    private long _cursor;

    /// <summary>A region of <paramref name="blockCount"/> blocks from <paramref name="firstBlock"/>, all free.</summary>
    public BlockAllocator(long firstBlock, long blockCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstBlock);
        ArgumentOutOfRangeException.ThrowIfNegative(blockCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockCount, long.MaxValue - firstBlock);
        _regionStart = _cursor = firstBlock;
        _regionEnd = firstBlock + blockCount;
        if (blockCount > 0)
        {
            AddRun(new FreeRun(firstBlock, blockCount));
        }
    }

    public long FreeBlocks { get; private set; }

    /// <summary>The block after the region's last.</summary>
    public long RegionEnd => _regionEnd;

    public long FreeRunCount => _byStart.Count;

    /// <summary>The free runs in address order.</summary>
    public IEnumerable<(long Start, long Length)> FreeRuns => _byStart.Select(run => (run.Start, run.Length));

    /// <summary>
    /// Allocates <paramref name="count"/> blocks, appending the runs that make them up to
    /// <paramref name="runs"/> in the order taken, and returns true; or returns false, changing
    /// nothing, when fewer blocks are free.
    /// </summary>
    public bool TryAllocate(long count, List<(long Start, long Length)> runs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(runs);
        if (count > FreeBlocks)
        {
            return false;
        }

        if (count > 0 && !TryTakeAtCursor(count, runs) && !TryTakeBestFit(count, runs))
        {
            TakeInAddressOrder(count, runs);
        }

        return true;
    }

    /// <summary>
    /// Returns [<paramref name="start"/>, +<paramref name="length"/>) to free space, merging with
    /// free neighbours. Throws <see cref="InvalidOperationException"/> if any of it is already
    /// free or outside the region.
    /// </summary>
    public void Free(long start, long length)
    {
        CheckInRegion(start, length);
        long end = start + length;
        var before = LastStartingAtOrBefore(start);
        var after = FirstStartingAfter(start);
        if ((before.Length > 0 && before.End > start) || (after.Length > 0 && after.Start < end))
        {
            throw new InvalidOperationException($"Double free: blocks [{start}, {end}) are already free in part or whole.");
        }

        var merged = new FreeRun(start, length);
        if (before.Length > 0 && before.End == start)
        {
            RemoveRun(before);
            merged = new FreeRun(before.Start, merged.Length + before.Length);
        }

        if (after.Length > 0 && after.Start == end)
        {
            RemoveRun(after);
            merged = merged with { Length = merged.Length + after.Length };
        }

        AddRun(merged);
    }

    /// <summary>
    /// Takes [<paramref name="start"/>, +<paramref name="length"/>) out of free space (recovery
    /// rebuilding it from the maps). Throws <see cref="InvalidOperationException"/> if any of it
    /// is not free or is outside the region.
    /// </summary>
    public void MarkAllocated(long start, long length)
    {
        CheckInRegion(start, length);
        var run = LastStartingAtOrBefore(start);
        if (run.Length == 0 || run.End < start + length)
        {
            throw new InvalidOperationException($"Blocks [{start}, {start + length}) are not all free, so they cannot be marked allocated.");
        }

        Carve(run, start, length);
    }

    private bool TryTakeAtCursor(long count, List<(long Start, long Length)> runs)
    {
        var run = LastStartingAtOrBefore(_cursor);
        if (run.Length == 0 || run.End - _cursor < count)
        {
            return false;
        }

        Take(run, _cursor, count, runs);
        return true;
    }

    private bool TryTakeBestFit(long count, List<(long Start, long Length)> runs)
    {
        var run = _byLength.GetViewBetween(new FreeRun(long.MinValue, count), new FreeRun(long.MaxValue, long.MaxValue)).Min;
        if (run.Length == 0)
        {
            return false;
        }

        Take(run, run.Start, count, runs);
        return true;
    }

    private void TakeInAddressOrder(long count, List<(long Start, long Length)> runs)
    {
        var chosen = new List<FreeRun>();
        long needed = count;
        foreach (var run in RunsFromCursor())
        {
            chosen.Add(run);
            needed -= run.Length;
            if (needed <= 0)
            {
                break;
            }
        }

        long remaining = count;
        foreach (var run in chosen)
        {
            long taken = Math.Min(run.Length, remaining);
            Take(run, run.Start, taken, runs);
            remaining -= taken;
        }
    }

    /// <summary>Free runs in address order from the cursor to the region's end, then from its start.</summary>
    private IEnumerable<FreeRun> RunsFromCursor()
    {
        var fromCursor = _byStart.GetViewBetween(new FreeRun(_cursor, 0), new FreeRun(long.MaxValue, 0));
        var beforeCursor = _byStart.GetViewBetween(new FreeRun(long.MinValue, 0), new FreeRun(_cursor - 1, 0));
        return fromCursor.Concat(beforeCursor);
    }

    /// <summary>Allocates [<paramref name="at"/>, +<paramref name="count"/>) out of <paramref name="run"/> and moves the cursor past it.</summary>
    private void Take(FreeRun run, long at, long count, List<(long Start, long Length)> runs)
    {
        Carve(run, at, count);
        runs.Add((at, count));
        _cursor = at + count;
    }

    /// <summary>Removes [<paramref name="at"/>, +<paramref name="count"/>), which lies inside <paramref name="run"/>, from free space.</summary>
    private void Carve(FreeRun run, long at, long count)
    {
        RemoveRun(run);
        if (at > run.Start)
        {
            AddRun(new FreeRun(run.Start, at - run.Start));
        }

        if (at + count < run.End)
        {
            AddRun(new FreeRun(at + count, run.End - (at + count)));
        }
    }

    /// <summary>The run with the greatest start ≤ <paramref name="block"/>, or a run of length 0 if none.</summary>
    private FreeRun LastStartingAtOrBefore(long block) =>
        _byStart.GetViewBetween(new FreeRun(long.MinValue, 0), new FreeRun(block, 0)).Max;

    /// <summary>The run with the least start &gt; <paramref name="block"/>, or a run of length 0 if none.</summary>
    private FreeRun FirstStartingAfter(long block) =>
        block == long.MaxValue ? default : _byStart.GetViewBetween(new FreeRun(block + 1, 0), new FreeRun(long.MaxValue, 0)).Min;

    private void AddRun(FreeRun run)
    {
        _byStart.Add(run);
        _byLength.Add(run);
        FreeBlocks += run.Length;
    }

    private void RemoveRun(FreeRun run)
    {
        _byStart.Remove(run);
        _byLength.Remove(run);
        FreeBlocks -= run.Length;
    }

    private void CheckInRegion(long start, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (start < _regionStart || start > _regionEnd - length)
        {
            throw new InvalidOperationException(
                $"Blocks [{start}, +{length}) are not inside the data region [{_regionStart}, {_regionEnd}).");
        }
    }

    /// <summary>A run of free blocks; a length of 0 stands for "no run" in lookups.</summary>
    private readonly record struct FreeRun(long Start, long Length)
    {
        public long End => Start + Length;
    }
}
