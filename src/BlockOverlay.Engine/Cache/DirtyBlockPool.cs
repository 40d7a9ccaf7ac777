using System.Diagnostics;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// One dirty 4 KiB block of an instance's cache: its bytes and where it stands in write-back.
/// Reused through <see cref="DirtyBlockPool"/>; only its <see cref="InstanceCache"/> touches
/// it, under that cache's gate, while it is in the cache's map.
/// </summary>
internal sealed class DirtyBlock
{
    public byte[] Data { get; } = GC.AllocateUninitializedArray<byte>(UpperStore.BlockSize);

    /// <summary>Bumped by every write: a write-back of an older version must not remove it.</summary>
    public long Version { get; set; }

    /// <summary>Sequence number of the write that made it dirty (relative to the store).</summary>
    public long DirtySince { get; set; }

    /// <summary>Sequence number of the first write while it was being written back; 0 if none.</summary>
    public long RedirtiedSince { get; set; }

    public bool WritingBack { get; set; }

    /// <summary>Its virtual block number in its instance.</summary>
    public long Number { get; private set; }

    /// <summary>The next older and younger dirty blocks of its instance (<see cref="AgeOrder"/>).</summary>
    public DirtyBlock? Older { get; set; }

    /// <inheritdoc cref="Older"/>
    public DirtyBlock? Younger { get; set; }

    /// <summary>Makes it block <paramref name="number"/>, dirty since the write with sequence number <paramref name="dirtySince"/> (its bytes are the caller's to fill).</summary>
    public DirtyBlock Reset(long number, long dirtySince)
    {
        (Number, Version, DirtySince, RedirtiedSince, WritingBack, Older, Younger) = (number, 0, dirtySince, 0, false, null, null);
        return this;
    }
}

/// <summary>
/// Spare dirty blocks, shared by every instance of a cache, so that taking a block into the
/// cache allocates nothing once the pool is warm.
/// </summary>
/// <remarks>
/// Why: allocating a 4 KiB array per block written, at hundreds of MiB/s, made the .NET GC
/// pause the whole server many times a second (gen1 collections copying blocks that live until
/// they are written back), and a neighbour's steady small writes felt those pauses as 10+ ms of
/// latency (perf/noisy-neighbour). Reused blocks end up in gen2 and cause no collections.
/// <para>
/// A block comes here only after it left its cache's map, under that cache's gate, so it is
/// never in two places. The pool keeps at most its capacity (a burst beyond it is left to the
/// GC), and <see cref="TrimIfIdle"/> gives half of the spares back whenever none was taken for a
/// second, so an idle server does not hold a burst's memory for ever. Its lock is a leaf: taken
/// inside a cache's gate, and nothing is taken inside it.
/// </para>
/// </remarks>
internal sealed class DirtyBlockPool(int capacity)
{
    private static readonly TimeSpan IdleTime = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private readonly Stack<DirtyBlock> _spare = new();
    private long _lastTaken = Stopwatch.GetTimestamp();

    /// <summary>Spare blocks held now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _spare.Count;
            }
        }
    }

    /// <summary>A block for the cache's map: a spare one if there is one.</summary>
    public DirtyBlock Take(long number, long dirtySince)
    {
        lock (_lock)
        {
            _lastTaken = Stopwatch.GetTimestamp();
            if (_spare.TryPop(out var block))
            {
                return block.Reset(number, dirtySince);
            }
        }

        return new DirtyBlock().Reset(number, dirtySince);
    }

    /// <summary>Takes back a block that left a cache's map (kept if there is room).</summary>
    public void Give(DirtyBlock block)
    {
        lock (_lock)
        {
            if (_spare.Count < capacity)
            {
                _spare.Push(block);
            }
        }
    }

    /// <summary>Gives half of the spares to the GC if none was taken for a second (the background writer calls it).</summary>
    public void TrimIfIdle()
    {
        lock (_lock)
        {
            if (_spare.Count > 0 && Stopwatch.GetElapsedTime(_lastTaken) >= IdleTime)
            {
                for (int drop = (_spare.Count + 1) / 2; drop > 0; drop--)
                {
                    _spare.Pop();
                }

                _spare.TrimExcess();
                _lastTaken = Stopwatch.GetTimestamp();
            }
        }
    }
}
