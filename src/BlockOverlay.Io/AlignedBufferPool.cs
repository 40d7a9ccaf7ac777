using System.Collections.Concurrent;
using System.Numerics;

namespace BlockOverlay.Io;

/// <summary>
/// Aligned buffers for reads that the caller copies out of at once (reads of upper data): rented
/// per I/O and given back, so a read allocates nothing and zeroes nothing (the device overwrites
/// what the caller looks at).
/// </summary>
/// <remarks>
/// Buffers come in powers of two from one block to <see cref="PooledMax"/>; a rent gets the
/// smallest that holds it, and larger ones are made and freed each time. Each size keeps at most
/// <see cref="KeptBytesPerSize"/> (at least two buffers), so what the pool holds idle is bounded
/// (about 11 MiB if every size was busy once). Thread-safe and lock-free. A rented buffer holds
/// whatever its last user left: read into it before reading from it.
/// </remarks>
public sealed class AlignedBufferPool
{
    /// <summary>The largest size pooled.</summary>
    public const int PooledMax = 1 << 20;

    private const int KeptBytesPerSize = 1 << 20;
    private static readonly int Sizes = BitOperations.Log2(PooledMax / IBlockDevice.BlockSize) + 1;
    private readonly ConcurrentQueue<AlignedBuffer>[] _free = [.. Enumerable.Range(0, Sizes).Select(_ => new ConcurrentQueue<AlignedBuffer>())];

    /// <summary>The pool the store's reads share.</summary>
    public static AlignedBufferPool Shared { get; } = new();

    /// <summary>A buffer of at least <paramref name="length"/> bytes (a positive multiple of the block size); slice it to the length.</summary>
    public AlignedBuffer Rent(int length)
    {
        if (length > PooledMax)
        {
            return new AlignedBuffer(length, clear: false);
        }

        int size = SizeOf(length);
        return _free[size].TryDequeue(out var buffer) ? buffer : new AlignedBuffer(IBlockDevice.BlockSize << size, clear: false);
    }

    /// <summary>Gives back a buffer from <see cref="Rent"/>, once no I/O uses it; it is freed if its size holds enough (or it was not the pool's).</summary>
    public void Return(AlignedBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer.Length > PooledMax)
        {
            ((IDisposable)buffer).Dispose();
            return;
        }

        int size = SizeOf(buffer.Length);
        var free = _free[size];
        if (buffer.Length != IBlockDevice.BlockSize << size || free.Count >= Math.Max(2, KeptBytesPerSize / buffer.Length))
        {
            ((IDisposable)buffer).Dispose();
            return;
        }

        free.Enqueue(buffer);
    }

    /// <summary>The size class of a length: 0 for one block, 1 for two, 2 for up to four, …</summary>
    private static int SizeOf(int length)
    {
        if (length <= 0 || length % IBlockDevice.BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length,
                $"an aligned buffer's length must be a positive multiple of {IBlockDevice.BlockSize} bytes");
        }

        return BitOperations.Log2(BitOperations.RoundUpToPowerOf2((uint)(length / IBlockDevice.BlockSize)));
    }
}
