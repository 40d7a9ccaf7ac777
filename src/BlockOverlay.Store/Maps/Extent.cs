namespace BlockOverlay.Store.Maps;

/// <summary>
/// One stored extent of an <see cref="ExtentMap"/> (Upper or Zero, never Base), packed into
/// 24 bytes because a fragmented disk holds millions of them: the length, committed flag
/// and kind share one word (bits 0-60 length, up to <see cref="ExtentMap.BlockLimit"/>;
/// bit 61 committed; bits 62-63 kind).
/// </summary>
internal readonly struct Extent
{
    private const ulong LengthMask = (1UL << 61) - 1;
    private const ulong CommittedBit = 1UL << 61;
    private const int KindShift = 62;

    private readonly ulong _lengthAndState;

    public Extent(long start, long length, ExtentKind kind, long storeBlock, bool committed)
    {
        Start = start;
        StoreBlock = kind == ExtentKind.Upper ? storeBlock : 0;
        _lengthAndState = (ulong)length | (committed ? CommittedBit : 0) | ((ulong)kind << KindShift);
    }

    public long Start { get; }

    public long StoreBlock { get; }

    public long Length => (long)(_lengthAndState & LengthMask);

    public long End => Start + Length;

    public ExtentKind Kind => (ExtentKind)(_lengthAndState >> KindShift);

    public bool Committed => (_lengthAndState & CommittedBit) != 0;

    /// <summary>The part of this extent in [<paramref name="from"/>, <paramref name="to"/>), which must lie inside it.</summary>
    public Extent Clip(long from, long to) =>
        new(from, to - from, Kind, StoreBlock + (from - Start), Committed);

    public Extent AsCommitted() => new(Start, Length, Kind, StoreBlock, committed: true);

    /// <summary>
    /// Whether <paramref name="next"/> starts where this ends and reads on from it the same
    /// way, so the two must be one extent.
    /// </summary>
    public bool JoinsWith(Extent next) =>
        next.Start == End && next.Kind == Kind && next.Committed == Committed
        && (Kind != ExtentKind.Upper || next.StoreBlock == StoreBlock + Length);

    /// <summary>This extent followed by <paramref name="next"/>, which <see cref="JoinsWith"/> it.</summary>
    public Extent Join(Extent next) => new(Start, Length + next.Length, Kind, StoreBlock, Committed);

    public MappedExtent ToMapped() => new(Start, Length, Kind, StoreBlock, Committed);

    public override string ToString() => ToMapped().ToString();
}
