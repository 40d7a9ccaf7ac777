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

    /// <summary>Makes every completed write durable (fdatasync).</summary>
    ValueTask FlushAsync();
}
