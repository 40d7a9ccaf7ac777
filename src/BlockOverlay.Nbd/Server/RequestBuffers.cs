using System.Buffers;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Memory for WRITE payloads and READ data, one for the whole server, counted while held
/// (<see cref="ServerCounters.RequestBufferBytes"/>). Buffers up to 1 MiB come from the shared
/// pool; larger ones are allocated and left to the garbage collector, so a burst of 32 MiB
/// requests (or a hostile client's) does not leave the process-wide pool holding them.
/// </summary>
/// <remarks>
/// After a burst the runtime keeps what its heap grew to until something makes it collect, and
/// a quiet server does not: a burst of held buffers of <see cref="CollectAfterBytes"/> or more,
/// once everything is given back, is followed by one aggressive collection that returns the
/// memory to the system (at most one per <see cref="CollectInterval"/>). It pauses the process
/// briefly, at a moment when no request holds a buffer (perf/hostile.sh shows the effect).
/// </remarks>
internal sealed class RequestBuffers(ServerCounters counters)
{
    /// <summary>The largest buffer taken from (and given back to) the shared pool.</summary>
    public const int PooledMax = 1 << 20;

    /// <summary>A burst at least this large is worth a collection once it is over.</summary>
    public const long CollectAfterBytes = 128L << 20;

    public static readonly TimeSpan CollectInterval = TimeSpan.FromSeconds(30);

    private long _held;
    private long _peak;
    private long _lastCollect;
    private int _collecting;

    public byte[] Rent(int length)
    {
        var buffer = length <= PooledMax ? ArrayPool<byte>.Shared.Rent(length) : GC.AllocateUninitializedArray<byte>(length);
        counters.AddRequestBufferBytes(buffer.Length);
        long held = Interlocked.Add(ref _held, buffer.Length);
        for (long peak = Volatile.Read(ref _peak); held > peak; peak = Volatile.Read(ref _peak))
        {
            if (Interlocked.CompareExchange(ref _peak, held, peak) == peak)
            {
                break;
            }
        }

        return buffer;
    }

    public void Return(byte[] buffer)
    {
        counters.AddRequestBufferBytes(-buffer.Length);
        if (buffer.Length <= PooledMax)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        if (Interlocked.Add(ref _held, -buffer.Length) == 0 && Volatile.Read(ref _peak) >= CollectAfterBytes)
        {
            CollectSoon();
        }
    }

    private void CollectSoon()
    {
        long now = Environment.TickCount64;
        if (now - Volatile.Read(ref _lastCollect) < CollectInterval.TotalMilliseconds || Interlocked.Exchange(ref _collecting, 1) == 1)
        {
            return;
        }

        ThreadPool.QueueUserWorkItem(_ =>
        {
            Volatile.Write(ref _peak, 0);
            Volatile.Write(ref _lastCollect, Environment.TickCount64);
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            Volatile.Write(ref _collecting, 0);
        });
    }
}
