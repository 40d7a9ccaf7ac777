namespace BlockOverlay.Store;

/// <summary>Why the store wrote something.</summary>
public enum WriteReason
{
    /// <summary>Instance data.</summary>
    Data,
    /// <summary>Journal batches carrying map changes.</summary>
    Journal,
    /// <summary>Journal batches creating or deleting instances.</summary>
    Metadata,
    /// <summary>Checkpoints and superblocks.</summary>
    Checkpoint,
}

/// <summary>Bytes the store wrote to its device, by reason (thread-safe).</summary>
public sealed class StoreCounters
{
    private readonly long[] _bytes = new long[Enum.GetValues<WriteReason>().Length];

    public long this[WriteReason reason] => Interlocked.Read(ref _bytes[(int)reason]);

    internal void Add(WriteReason reason, long bytes) => Interlocked.Add(ref _bytes[(int)reason], bytes);
}
