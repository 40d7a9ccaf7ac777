namespace BlockOverlay.Store;

/// <summary>What a store looks like, in bytes unless said otherwise.</summary>
public sealed record StoreInfo(Guid StoreId, long DeviceBytes, long JournalBytes, long JournalUsedBytes, long DataBytes,
    long FreeBytes, long CheckpointBytes, int Instances, long Extents);

/// <summary>Options of a new store.</summary>
public sealed record StoreCreateOptions
{
    /// <summary>The smallest journal an operator may ask for, and the default's floor: 64 blocks (256 KiB).</summary>
    public const long MinJournalBlocks = 64;

    /// <summary>The default's ceiling: 16384 blocks (64 MiB).</summary>
    public const long MaxDefaultJournalBlocks = 16384;

    /// <summary>
    /// Journal size in blocks; default (<see cref="DefaultJournalBlocks"/>): 1/64 of the device,
    /// between <see cref="MinJournalBlocks"/> and <see cref="MaxDefaultJournalBlocks"/>. Recovery
    /// replays at most the journal, so its size bounds the work of a start after a crash.
    /// </summary>
    public long? JournalBlocks { get; init; }

    public static long DefaultJournalBlocks(long deviceBlocks) => Math.Clamp(deviceBlocks / 64, MinJournalBlocks, MaxDefaultJournalBlocks);
}
