namespace BlockOverlay.Store;

/// <summary>Why the store wrote something.</summary>
/// <remarks>
/// The store does not decide why data is written; its caller says so with each write
/// (<see cref="Flush"/> or <see cref="Background"/>), and the store only keeps the tally.
/// </remarks>
public enum WriteReason
{
    /// <summary>Instance data written because someone is waiting for it to be durable (a flush).</summary>
    Flush,
    /// <summary>Instance data written ahead of any flush (background write-back).</summary>
    Background,
    /// <summary>Journal batches carrying map changes.</summary>
    Journal,
    /// <summary>Journal batches creating, changing or deleting instances.</summary>
    Metadata,
    /// <summary>Checkpoints and superblocks.</summary>
    Checkpoint,
}

/// <summary>Bytes the store wrote to its device, by reason (thread-safe).</summary>
public sealed class StoreCounters
{
    private readonly long[] _bytes = new long[Enum.GetValues<WriteReason>().Length];

    public long this[WriteReason reason] => Interlocked.Read(ref _bytes[(int)reason]);

    /// <summary>Instance data written, whatever the reason.</summary>
    public long DataBytes => this[WriteReason.Flush] + this[WriteReason.Background];

    internal void Add(WriteReason reason, long bytes) => Interlocked.Add(ref _bytes[(int)reason], bytes);
}
