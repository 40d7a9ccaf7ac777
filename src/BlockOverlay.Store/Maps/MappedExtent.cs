namespace BlockOverlay.Store.Maps;

/// <summary>
/// A run of an instance's virtual blocks that all read the same way, in 4 KiB blocks.
/// </summary>
/// <param name="VirtualBlock">First virtual block of the run.</param>
/// <param name="Length">Number of blocks, at least 1.</param>
/// <param name="Kind">How the run reads.</param>
/// <param name="StoreBlock">For <see cref="ExtentKind.Upper"/>, the store block holding the first block; otherwise 0.</param>
/// <param name="Committed">Whether the mapping is in the journal (always true for <see cref="ExtentKind.Base"/> gaps).</param>
public readonly record struct MappedExtent(long VirtualBlock, long Length, ExtentKind Kind, long StoreBlock, bool Committed)
{
    /// <summary>The block just past the run.</summary>
    public long End => VirtualBlock + Length;
}
