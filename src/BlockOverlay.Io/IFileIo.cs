namespace BlockOverlay.Io;

/// <summary>
/// The reads, writes and flushes of one open store file: what differs between the backends of
/// <see cref="FileDevice"/> (<see cref="IoBackend"/>), which does the opening, locking, sizing
/// and argument checks once for both. Arguments arrive checked.
/// </summary>
internal interface IFileIo : IAsyncDisposable
{
    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/>; a short file is EIO.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer);

    /// <summary>pwrite, or with <paramref name="durable"/> pwrite with RWF_DSYNC.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable);

    /// <summary>
    /// pwritev, or with <paramref name="durable"/> pwritev with RWF_DSYNC: the segments one after
    /// another from <paramref name="offset"/>, written from where they are (<see cref="IoVecs"/>).
    /// </summary>
    ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable);

    /// <summary>fdatasync.</summary>
    ValueTask FlushAsync();
}
