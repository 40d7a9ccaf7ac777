namespace BlockOverlay.Io;

/// <summary>
/// Where the store lives: a range of bytes on a file, a block device or memory, read and
/// written in aligned units. The store is the only user; it never sees what backs it.
/// </summary>
/// <remarks>
/// Contract, shared by every implementation and decorator:
/// <list type="bullet">
/// <item>Offsets, lengths and buffer addresses are multiples of <see cref="BlockSize"/>
/// (4096): what O_DIRECT demands. Buffers come from <see cref="AlignedBuffer"/>.
/// Misaligned or out-of-range calls throw <see cref="ArgumentException"/>.</item>
/// <item>A write with <c>durable: true</c> is on stable media when its task completes
/// (O_DIRECT + RWF_DSYNC: forced unit access). A write with <c>durable: false</c> may be
/// lost, or torn at 512-byte sector granularity, by a power loss until a later
/// <see cref="FlushAsync"/> completes. Reads see every completed write either way.</item>
/// <item>Concurrent calls are allowed; concurrent writes to overlapping ranges are the
/// caller's mistake (the store never issues them).</item>
/// <item>Nothing blocks the calling thread on I/O: work that waits returns an incomplete task.</item>
/// <item>Device failures are <see cref="IOException"/> with the errno in <c>HResult</c> where known.</item>
/// </list>
/// </remarks>
public interface IBlockDevice : IAsyncDisposable
{
    /// <summary>Alignment of every offset, length and buffer, in bytes.</summary>
    public const int BlockSize = 4096;

    /// <summary>Usable size in bytes (a multiple of <see cref="BlockSize"/>).</summary>
    long Size { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>; durable before completion if asked.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable);

    /// <summary>
    /// A gather write: <paramref name="segments"/> one after another from <paramref name="offset"/>,
    /// as <see cref="WriteAsync(long, ReadOnlyMemory{byte}, bool)"/> of their concatenation would
    /// write them, without concatenating them first. Every segment is aligned like a whole write.
    /// </summary>
    /// <remarks>
    /// This default copies the segments into one aligned buffer and writes that; devices that
    /// can write from several buffers at once (pwritev, IORING_OP_WRITEV) do so instead. A
    /// durable gather write is durable as a whole when its task completes; before that, a power
    /// loss may keep any subset of its sectors, as for one large write.
    /// </remarks>
    async ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        int length = BlockAlignment.ValidateGather(Size, offset, segments.Span);
        var gathered = AlignedBufferPool.Shared.Rent(length);
        try
        {
            int done = 0;
            foreach (var segment in segments.Span)
            {
                segment.Span.CopyTo(gathered.Span[done..]);
                done += segment.Length;
            }

            await WriteAsync(offset, gathered.Memory[..length], durable);
        }
        finally
        {
            AlignedBufferPool.Shared.Return(gathered);
        }
    }

    /// <summary>Makes every completed write durable (fdatasync).</summary>
    ValueTask FlushAsync();
}
