namespace BlockOverlay.LibNbd;

/// <summary>One export advertised in reply to NBD_OPT_LIST; the description is empty when
/// the server sent none.</summary>
public readonly record struct ExportEntry(string Name, string Description);

/// <summary>One block status descriptor. Offset is not on the wire: it is the sum of the
/// lengths before it, starting at the request's offset. Flags are specific to the meta
/// context; for "base:allocation" read them as <see cref="AllocationState"/>.</summary>
public readonly record struct BlockStatusExtent(ulong Offset, uint Length, uint Flags);

/// <summary>One chunk of a structured read reply. Errno is set only for
/// <see cref="ReadChunkStatus.Error"/>.</summary>
public readonly record struct ReadChunk(ulong Offset, ulong Length, ReadChunkStatus Status, int Errno);

/// <summary>Meta context names libnbd knows.</summary>
public static class MetaContexts
{
    public const string BaseAllocation = "base:allocation";
}
