using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Quota;

/// <summary>
/// The one owner of an instance's quota accounting: which of its virtual blocks are reserved,
/// and whether new space fits its quota.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> A virtual block is an upper block (its map names store blocks), reserved (its
/// data is held elsewhere, in a write-back cache, and will become an upper block when written
/// back), or neither. The footprint, what counts against the quota, is upper plus reserved.
/// </para>
/// <para>
/// <b>Invariants.</b> Every block a cache holds was asked for (<see cref="TryReserve"/>) before
/// the cache took it, with or without a quota, so it is upper or reserved, never both: a
/// reservation ends in the same step as its block is mapped or zeroed (<see cref="End"/>), so
/// no block is counted twice or missed on its way to the store. Only new space (neither upper
/// nor reserved) is refused; data already accepted counts even past a quota set later.
/// </para>
/// <para>
/// <b>Locking.</b> None of its own: the owning <see cref="StoreInstance"/>'s gate guards it with
/// the map, so a look-up and a reservation are one step. The same gate makes its scratch list of
/// extents, reused by every reservation, one caller's at a time: a write allocates nothing here.
/// </para>
/// <para><b>Durability.</b> Memory only: after a crash no cache holds anything.</para>
/// </remarks>
internal sealed class QuotaReservations
{
    private const int MaxKeptExtents = 64;
    private readonly HashSet<long> _reserved = [];
    private readonly List<MappedExtent> _layout = [];

    public long Count => _reserved.Count;

    /// <summary>
    /// Reserves the blocks of [<paramref name="first"/>, +<paramref name="count"/>) that are new
    /// space, if the footprint then stays within <paramref name="quotaBlocks"/> (0: no quota);
    /// otherwise reserves nothing and returns false.
    /// </summary>
    public bool TryReserve(ExtentMap map, long first, long count, long quotaBlocks)
    {
        _layout.Clear();
        map.Lookup(first, count, _layout);
        long fresh = ReserveNewSpace(commit: false);
        bool fits = fresh == 0 || quotaBlocks == 0 || map.UpperBlocks + _reserved.Count + fresh <= quotaBlocks;
        if (fits)
        {
            ReserveNewSpace(commit: true);
        }

        if (_layout.Capacity > MaxKeptExtents)
        {
            _layout.Clear();
            _layout.Capacity = MaxKeptExtents; // a write over a fragmented range leaves no large list behind
        }

        return fits;
    }

    /// <summary>Blocks of [<paramref name="first"/>, +<paramref name="count"/>) were mapped or zeroed: their reservations end.</summary>
    public void End(long first, long count)
    {
        if (_reserved.Count == 0)
        {
            return;
        }

        if (count <= _reserved.Count)
        {
            for (long b = first; b < first + count; b++)
            {
                _reserved.Remove(b);
            }
        }
        else
        {
            _reserved.RemoveWhere(b => b >= first && b < first + count);
        }
    }

    /// <summary>Counts the blocks of <see cref="_layout"/> that are new space (neither upper nor reserved); with <paramref name="commit"/>, reserves them.</summary>
    private long ReserveNewSpace(bool commit)
    {
        long fresh = 0;
        foreach (var extent in _layout)
        {
            if (extent.Kind == ExtentKind.Upper)
            {
                continue;
            }

            for (long b = extent.VirtualBlock; b < extent.End; b++)
            {
                if (commit ? _reserved.Add(b) : !_reserved.Contains(b))
                {
                    fresh++;
                }
            }
        }

        return fresh;
    }

    /// <summary>The instance is gone.</summary>
    public void Clear() => _reserved.Clear();
}
