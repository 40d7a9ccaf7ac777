namespace BlockOverlay.Store.Format;

// The journal's tables, in bytes from the start of each structure (docs/FORMAT.md, "Journal").
// Block counts and positions are in 4096-byte blocks, lengths in bytes unless named in blocks.

/// <summary>A batch's header, at the start of its first block; the payload (commits) follows it.</summary>
internal static class BatchLayout
{
    public static readonly BytesField Magic = new(0, 8);
    public static readonly U64Field Sequence = new(Magic.End);
    public static readonly U32Field Blocks = new(Sequence.End);
    public static readonly U32Field PayloadBytes = new(Blocks.End);
    public static readonly U32Field Kind = new(PayloadBytes.End);
    public static readonly U32Field CommitCount = new(Kind.End);
    public static readonly BytesField StoreId = new(CommitCount.End, 16);
    public static readonly U64Field Reserved = new(StoreId.End);

    /// <summary>XXH64 of the header bytes before this field, followed by the payload.</summary>
    public static readonly U64Field Checksum = new(Reserved.End);
}

/// <summary>A commit's header; its records follow it.</summary>
internal static class CommitLayout
{
    public static readonly U32Field Magic = new(0);
    public static readonly U32Field InstanceId = new(Magic.End);
    public static readonly U32Field RecordCount = new(InstanceId.End);
    public static readonly U32Field RecordsBytes = new(RecordCount.End);

    /// <summary>The data commit's number (<see cref="JournalCommit.Number"/>); 0 for none.</summary>
    public static readonly U64Field Number = new(RecordsBytes.End);

    /// <summary>XXH64 of the records.</summary>
    public static readonly U64Field Checksum = new(Number.End);
}

/// <summary>A record's header; its body follows it.</summary>
internal static class RecordLayout
{
    public static readonly U8Field Type = new(0);
    public static readonly U8Field Reserved = new(Type.End);

    /// <summary>The record's length in bytes, this header included.</summary>
    public static readonly U16Field Length = new(Reserved.End);

    /// <summary>XXH32 of the body.</summary>
    public static readonly U32Field Checksum = new(Length.End);
}

/// <summary>Body of a Map record (type 1).</summary>
internal static class MapBody
{
    public static readonly U64Field VirtualBlock = new(0);
    public static readonly U64Field StoreBlock = new(VirtualBlock.End);
    public static readonly U64Field Length = new(StoreBlock.End);
}

/// <summary>Body of a Zero record (type 2).</summary>
internal static class ZeroBody
{
    public static readonly U64Field VirtualBlock = new(0);
    public static readonly U64Field Length = new(VirtualBlock.End);
}

/// <summary>Body of a SetFlushMode record (type 18): the mode byte, never with the unclean bit.</summary>
internal static class SetFlushModeBody
{
    public static readonly U8Field ModeByte = new(0);
}

/// <summary>Body of a SetQuota record (type 19): the quota in bytes (0: none).</summary>
internal static class SetQuotaBody
{
    public static readonly U64Field Quota = new(0);
}
