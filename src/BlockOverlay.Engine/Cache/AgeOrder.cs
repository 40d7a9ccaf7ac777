namespace BlockOverlay.Engine.Cache;

/// <summary>
/// One instance's dirty blocks from the oldest to the youngest by <see cref="DirtyBlock.DirtySince"/>,
/// linked through the blocks themselves: keeping the order allocates nothing (the blocks are pooled).
/// </summary>
/// <remarks>
/// <para><b>Invariant.</b> Walking from <see cref="Oldest"/> along <see cref="DirtyBlock.Younger"/>,
/// DirtySince never decreases. A new dirty block is the youngest (its write has the highest
/// sequence number so far), so it is appended; the one change that can break the order, a block
/// re-dirtied during its write-back taking the later DirtySince, goes through
/// <see cref="Reposition"/>, which walks back from the youngest (past the blocks dirtied since that
/// write, usually few).</para>
/// <para><b>Locking.</b> None: the owning <see cref="InstanceCache"/> calls it under its gate.</para>
/// </remarks>
internal sealed class AgeOrder
{
    private DirtyBlock? _youngest;

    /// <summary>The block dirty the longest, or null.</summary>
    public DirtyBlock? Oldest { get; private set; }

    /// <summary>Adds a block whose DirtySince is at least every other's.</summary>
    public void Append(DirtyBlock block)
    {
        block.Older = _youngest;
        block.Younger = null;
        if (_youngest is null)
        {
            Oldest = block;
        }
        else
        {
            _youngest.Younger = block;
        }

        _youngest = block;
    }

    public void Remove(DirtyBlock block)
    {
        if (block.Older is null)
        {
            Oldest = block.Younger;
        }
        else
        {
            block.Older.Younger = block.Younger;
        }

        if (block.Younger is null)
        {
            _youngest = block.Older;
        }
        else
        {
            block.Younger.Older = block.Older;
        }

        (block.Older, block.Younger) = (null, null);
    }

    /// <summary>Moves a block whose DirtySince grew to its place.</summary>
    public void Reposition(DirtyBlock block)
    {
        Remove(block);
        var older = _youngest;
        while (older is not null && older.DirtySince > block.DirtySince)
        {
            older = older.Older;
        }

        // Insert just after `older` (or first, if every block is younger).
        var younger = older is null ? Oldest : older.Younger;
        (block.Older, block.Younger) = (older, younger);
        if (older is null)
        {
            Oldest = block;
        }
        else
        {
            older.Younger = block;
        }

        if (younger is null)
        {
            _youngest = block;
        }
        else
        {
            younger.Older = block;
        }
    }

    /// <summary>Forgets every block (their links are reset when the pool hands them out again).</summary>
    public void Clear() => (Oldest, _youngest) = (null, null);
}
