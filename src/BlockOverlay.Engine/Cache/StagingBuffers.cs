using BlockOverlay.Io;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// The aligned buffers write-back batches are copied into before their durable write, reused:
/// a fresh one per batch (up to 8 MiB for a flush) was mapped, zeroed and faulted in page by
/// page, and that was more than half of the server's CPU while a neighbour wrote and flushed
/// (perf/RESULTS.md, "Fair shares": the profile).
/// </summary>
/// <remarks>
/// Up to <see cref="AlignedBufferPool.PooledMax"/> (a background batch, a small flush) they come
/// from <see cref="AlignedBufferPool.Shared"/>; larger ones are all one size, the largest batch,
/// and at most <see cref="Kept"/> of them are kept idle, so what is held is bounded. A rented
/// buffer holds what its last batch left: a batch writes only what it copied in. Thread-safe.
/// </remarks>
internal sealed class StagingBuffers(int largestBlocks) : IDisposable
{
    /// <summary>Large buffers kept idle at most: as many flushes as write back at once, usually.</summary>
    public const int Kept = 4;

    private readonly int _largest = largestBlocks * IBlockDevice.BlockSize;
    private readonly Stack<AlignedBuffer> _idle = new(); // its own lock
    private bool _disposed;

    /// <summary>A buffer of at least <paramref name="blocks"/> blocks; give it back with <see cref="Return"/>.</summary>
    public AlignedBuffer Rent(int blocks)
    {
        int length = blocks * IBlockDevice.BlockSize;
        if (length <= AlignedBufferPool.PooledMax)
        {
            return AlignedBufferPool.Shared.Rent(length);
        }

        lock (_idle)
        {
            if (_idle.TryPop(out var idle))
            {
                return idle;
            }
        }

        return new AlignedBuffer(Math.Max(length, _largest));
    }

    public void Return(AlignedBuffer buffer)
    {
        if (buffer.Length <= AlignedBufferPool.PooledMax)
        {
            AlignedBufferPool.Shared.Return(buffer);
            return;
        }

        lock (_idle)
        {
            if (!_disposed && buffer.Length == _largest && _idle.Count < Kept)
            {
                _idle.Push(buffer);
                return;
            }
        }

        ((IDisposable)buffer).Dispose();
    }

    public void Dispose()
    {
        lock (_idle)
        {
            _disposed = true;
            while (_idle.TryPop(out var buffer))
            {
                ((IDisposable)buffer).Dispose();
            }
        }
    }
}
