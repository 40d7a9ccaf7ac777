namespace BlockOverlay.Store;

/// <summary>What a store looks like, in bytes unless said otherwise.</summary>
public sealed record StoreInfo(Guid StoreId, long DeviceBytes, long JournalBytes, long JournalUsedBytes, long DataBytes,
    long FreeBytes, long CheckpointBytes, int Instances, long Extents);

/// <summary>Options of a new store.</summary>
public sealed record StoreCreateOptions
{
    /// <summary>Journal size in blocks; default: 1/64 of the device, between 64 blocks (256 KiB) and 16384 (64 MiB).</summary>
    public long? JournalBlocks { get; init; }
}
