using System.Buffers;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Memory for WRITE payloads and READ data, counted while held
/// (<see cref="ServerCounters.RequestBufferBytes"/>). Buffers up to 1 MiB come from the shared
/// pool; larger ones are allocated and left to the garbage collector, so a burst of 32 MiB
/// requests (or a hostile client's) does not leave the process-wide pool holding them.
/// </summary>
internal sealed class RequestBuffers(ServerCounters counters)
{
    /// <summary>The largest buffer taken from (and given back to) the shared pool.</summary>
    public const int PooledMax = 1 << 20;

    public byte[] Rent(int length)
    {
        var buffer = length <= PooledMax ? ArrayPool<byte>.Shared.Rent(length) : GC.AllocateUninitializedArray<byte>(length);
        counters.AddRequestBufferBytes(buffer.Length);
        return buffer;
    }

    public void Return(byte[] buffer)
    {
        counters.AddRequestBufferBytes(-buffer.Length);
        if (buffer.Length <= PooledMax)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
