using System.Runtime.InteropServices;

namespace BlockOverlay.Store.Maps;

/// <summary>
/// One instance's map from virtual blocks (4 KiB) to what they read as: the base image, an
/// upper extent in the store, or zeros.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>States of a block.</b> Base (not mapped: reads fall through to the base image), Upper
/// (in the store at a given block) or Zero (reads as zeros over whatever the base holds). Upper
/// and Zero blocks are also committed (their mapping is in the journal or a checkpoint) or
/// not. Only Upper and Zero are stored; Base is every gap between them.
/// </para>
/// <para>
/// <b>Invariants.</b> Stored extents are sorted, never overlap, never have length 0, and
/// are maximal: two adjacent extents of the same kind and committed state (and, for Upper,
/// store-contiguous) are always one extent, so sequential writes stay one extent and
/// <see cref="ExtentCount"/> is the least number of runs that describes the map.
/// </para>
/// <para>
/// <b>How a change is made.</b> Every change gathers the extents overlapping the range
/// widened by one block on each side (so that neighbours it may merge with are included),
/// rewrites them as clipped leftovers plus the new state, merges what touches, and hands the
/// result to <see cref="ExtentTree.Replace"/> in one step. Merges can only happen inside that
/// window: each of its edges is a Base block or cuts an extent whose outer part keeps its
/// state, so nothing beyond it can newly join.
/// </para>
/// <para>
/// <b>Complexity and memory.</b> With n stored extents and k of them touched: Lookup, Set and
/// MarkCommitted cost O(log n + k); CollectUncommitted costs O(u log n) for u uncommitted
/// extents, whatever n is; Extents and Clear O(n). Memory is about 35 bytes per extent (24-48,
/// see <see cref="ExtentTree"/>) and nothing per virtual block, so a 2^52-block disk costs
/// what its extents cost. Ranges must lie in [0, <see cref="BlockLimit"/>).
/// </para>
/// <para>
/// <b>Locking.</b> None: not thread-safe. The caller holds the instance's lock around every
/// call, reads included (a read uses the map's scratch lists), and around the enumeration of
/// <see cref="Extents"/>, which throws if the map changes under it.
/// </para>
/// </remarks>
public sealed class ExtentMap
{
    /// <summary>Every range, of virtual or of store blocks, lies in [0, BlockLimit): 2^60 blocks, 4 ZiB.</summary>
    public const long BlockLimit = 1L << 60;

    private const int NodeCapacity = 64;

    // Scratch kept between calls so the hot paths do not allocate; a huge trim or read may
    // grow it, and then it is given back rather than held for the map's lifetime.
    private const int ScratchKept = 256;

    private readonly ExtentTree _tree;
    private readonly List<Extent> _old = [];
    private readonly List<Extent> _new = [];
    private int _version;

    public ExtentMap()
        : this(NodeCapacity)
    {
    }

    /// <summary>A map whose tree nodes hold <paramref name="nodeCapacity"/> items: small values make deep trees for tests.</summary>
    internal ExtentMap(int nodeCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(nodeCapacity, 4);
        _tree = new ExtentTree(nodeCapacity);
    }

    /// <summary>Number of stored (Upper and Zero) extents.</summary>
    public int ExtentCount { get; private set; }

    /// <summary>Total length of the Upper extents: the store blocks this map holds.</summary>
    public long UpperBlocks { get; private set; }

    /// <summary>All Upper and Zero extents in order, Base gaps omitted (for checkpoints).</summary>
    public IEnumerable<MappedExtent> Extents => Enumerate();

    /// <summary>
    /// Sets [<paramref name="virtualBlock"/>, +<paramref name="length"/>) to one kind; for Upper,
    /// block i of the range maps to <paramref name="storeBlock"/> + i. Appends to
    /// <paramref name="replaced"/> the pieces of Upper and Zero extents that were there,
    /// clipped to the range, so the caller can free their store blocks.
    /// </summary>
    public void Set(long virtualBlock, long length, ExtentKind kind, long storeBlock, bool committed, List<MappedExtent> replaced)
    {
        long end = CheckRange(virtualBlock, length);
        ArgumentNullException.ThrowIfNull(replaced);
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not an extent kind.");
        }

        if (kind == ExtentKind.Upper)
        {
            CheckRange(storeBlock, length, nameof(storeBlock));
        }

        if (length == 0)
        {
            return;
        }

        GatherAround(virtualBlock, end);
        _new.Clear();
        foreach (var extent in _old)
        {
            var (from, to) = AppendHead(extent, virtualBlock, end);
            if (from < to)
            {
                replaced.Add(extent.Clip(from, to).ToMapped());
                UpperBlocks -= extent.Kind == ExtentKind.Upper ? to - from : 0;
            }
        }

        if (kind != ExtentKind.Base)
        {
            Append(new Extent(virtualBlock, length, kind, storeBlock, committed));
            UpperBlocks += kind == ExtentKind.Upper ? length : 0;
        }

        foreach (var extent in _old)
        {
            if (extent.End > end)
            {
                Append(extent.Clip(Math.Max(extent.Start, end), extent.End));
            }
        }

        ReplaceGathered(virtualBlock, end);
    }

    /// <summary>
    /// Appends to the new run the part of a gathered <paramref name="extent"/> before
    /// <paramref name="start"/>, if any, and returns the part of it inside [start, end) (empty if
    /// From ≥ To): the left edge both Set and MarkCommitted split at.
    /// </summary>
    private (long From, long To) AppendHead(Extent extent, long start, long end)
    {
        if (extent.Start < start)
        {
            Append(extent.Clip(extent.Start, Math.Min(extent.End, start)));
        }

        return (Math.Max(extent.Start, start), Math.Min(extent.End, end));
    }

    /// <summary>
    /// Appends extents covering exactly [<paramref name="virtualBlock"/>, +<paramref name="length"/>)
    /// in order, clipped to it; gaps are Base extents (StoreBlock 0, Committed).
    /// </summary>
    public void Lookup(long virtualBlock, long length, List<MappedExtent> result)
    {
        long end = CheckRange(virtualBlock, length);
        ArgumentNullException.ThrowIfNull(result);
        _old.Clear();
        _tree.CollectOverlapping(virtualBlock, end, _old);
        long next = virtualBlock;
        foreach (var extent in _old)
        {
            long from = Math.Max(extent.Start, virtualBlock), to = Math.Min(extent.End, end);
            AddBaseGap(next, from, result);
            result.Add(extent.Clip(from, to).ToMapped());
            next = to;
        }

        AddBaseGap(next, end, result);
        ReleaseLargeScratch();
    }

    /// <summary>
    /// Marks the parts of Upper and Zero extents inside [<paramref name="virtualBlock"/>,
    /// +<paramref name="length"/>) committed, splitting extents at the range's edges as needed.
    /// </summary>
    public void MarkCommitted(long virtualBlock, long length)
    {
        long end = CheckRange(virtualBlock, length);
        if (length == 0)
        {
            return;
        }

        GatherAround(virtualBlock, end);
        if (!AnyGatheredUncommittedIn(virtualBlock, end))
        {
            ReleaseLargeScratch();
            return;
        }

        _new.Clear();
        foreach (var extent in _old)
        {
            var (from, to) = AppendHead(extent, virtualBlock, end);
            if (from < to)
            {
                Append(extent.Clip(from, to).AsCommitted());
            }

            if (extent.End > end)
            {
                Append(extent.Clip(Math.Max(extent.Start, end), extent.End));
            }
        }

        ReplaceGathered(virtualBlock, end);
    }

    /// <summary>Marks every extent committed (after a checkpoint). Costs O(u log n) for u uncommitted extents.</summary>
    public void MarkAllCommitted()
    {
        var uncommitted = new List<Extent>();
        _tree.CollectUncommitted(uncommitted);
        foreach (var extent in uncommitted)
        {
            MarkCommitted(extent.Start, extent.Length);
        }
    }

    /// <summary>Appends every uncommitted extent, in order.</summary>
    public void CollectUncommitted(List<MappedExtent> result)
    {
        ArgumentNullException.ThrowIfNull(result);
        _old.Clear();
        _tree.CollectUncommitted(_old);
        foreach (var extent in _old)
        {
            result.Add(extent.ToMapped());
        }

        ReleaseLargeScratch();
    }

    /// <summary>Removes everything (instance deletion), appending every removed extent to <paramref name="removed"/>.</summary>
    public void Clear(List<MappedExtent> removed)
    {
        ArgumentNullException.ThrowIfNull(removed);
        foreach (var extent in _tree.InOrder())
        {
            removed.Add(extent.ToMapped());
        }

        _tree.Clear();
        ExtentCount = 0;
        UpperBlocks = 0;
        _version++;
    }

    /// <summary>Checks the tree's shape invariants; for tests.</summary>
    internal void ValidateStructure() => _tree.Validate();

    private static long CheckRange(long block, long length, string name = "virtualBlock")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(block, name);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (block > BlockLimit - length)
        {
            throw new ArgumentOutOfRangeException(name, block, $"Blocks [{block}, +{length}) run past the limit of {BlockLimit}.");
        }

        return block + length;
    }

    private static void AddBaseGap(long from, long to, List<MappedExtent> result)
    {
        if (from < to)
        {
            result.Add(new MappedExtent(from, to - from, ExtentKind.Base, 0, Committed: true));
        }
    }

    /// <summary>
    /// Gathers into <c>_old</c> the extents overlapping [<paramref name="start"/> - 1,
    /// <paramref name="end"/> + 1): the range and the neighbours the new state may merge with.
    /// </summary>
    private void GatherAround(long start, long end)
    {
        _old.Clear();
        _tree.CollectOverlapping(Math.Max(start - 1, 0), end + 1, _old);
    }

    /// <summary>Appends to <c>_new</c>, merging with the last extent there when the two read on as one.</summary>
    private void Append(Extent extent)
    {
        if (_new.Count > 0 && _new[^1].JoinsWith(extent))
        {
            _new[^1] = _new[^1].Join(extent);
        }
        else
        {
            _new.Add(extent);
        }
    }

    /// <summary>Swaps the gathered extents (<c>_old</c>) for the rewritten ones (<c>_new</c>).</summary>
    private void ReplaceGathered(long start, long end)
    {
        // _old is exactly the extents starting in [lo, end + 1): the first may start before
        // the range (it holds block start - 1), the last may start at end (it holds block end).
        long lo = _old.Count > 0 ? Math.Min(_old[0].Start, start) : start;
        _tree.Replace(lo, end + 1, CollectionsMarshal.AsSpan(_new));
        ExtentCount += _new.Count - _old.Count;
        _version++;
        ReleaseLargeScratch();
    }

    private bool AnyGatheredUncommittedIn(long start, long end)
    {
        foreach (var extent in _old)
        {
            if (!extent.Committed && extent.End > start && extent.Start < end)
            {
                return true;
            }
        }

        return false;
    }

    private void ReleaseLargeScratch()
    {
        Shrink(_old);
        Shrink(_new);

        static void Shrink(List<Extent> scratch)
        {
            if (scratch.Capacity > ScratchKept)
            {
                scratch.Clear();
                scratch.Capacity = ScratchKept;
            }
        }
    }

    private IEnumerable<MappedExtent> Enumerate()
    {
        int version = _version;
        using var extents = _tree.InOrder().GetEnumerator();
        while (true)
        {
            if (version != _version)
            {
                throw new InvalidOperationException("The extent map changed while its extents were being enumerated.");
            }

            if (!extents.MoveNext())
            {
                yield break;
            }

            yield return extents.Current.ToMapped();
        }
    }
}
