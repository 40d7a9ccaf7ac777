using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// One dirty 4 KiB block of an instance's cache: its bytes and where it stands in write-back.
/// Reused through <see cref="DirtyBlockPool"/>; only its <see cref="InstanceCache"/> touches
/// it, under that cache's gate, while it is in the cache's map.
/// </summary>
/// <remarks>
/// Its bytes are a block of a <see cref="BlockSlab"/>: aligned native memory, so the store writes
/// them to O_DIRECT as they are (a gather write, no staging copy). While a write-back is on its
/// way, <see cref="InFlight"/> names the bytes it writes; a client write then gives the block
/// new bytes first (copy on write) and leaves those to the write-back, which gives them back
/// when it finishes. So bytes the device is reading never change.
/// </remarks>
internal sealed class DirtyBlock
{
    /// <summary>Its current bytes: one 4 KiB block of a <see cref="BlockSlab"/>.</summary>
    public Memory<byte> Data { get; set; }

    /// <summary>The bytes a write-back of it is writing now (its Data then, or older ones); empty if none.</summary>
    public Memory<byte> InFlight { get; set; }

    /// <summary>Whether a write-back of it is on its way.</summary>
    public bool WritingBack => !InFlight.IsEmpty;

    /// <summary>Bumped by every write: a write-back of an older version must not remove it.</summary>
    public long Version { get; set; }

    /// <summary>Sequence number of the write that made it dirty (relative to the store).</summary>
    public long DirtySince { get; set; }

    /// <summary>Sequence number of the first write while it was being written back; 0 if none.</summary>
    public long RedirtiedSince { get; set; }

    /// <summary>Its virtual block number in its instance.</summary>
    public long Number { get; private set; }

    /// <summary>The next older and younger dirty blocks of its instance (<see cref="AgeOrder"/>).</summary>
    public DirtyBlock? Older { get; set; }

    /// <inheritdoc cref="Older"/>
    public DirtyBlock? Younger { get; set; }

    /// <summary>Makes it block <paramref name="number"/>, dirty since the write with sequence number <paramref name="dirtySince"/> (its bytes are the caller's to fill).</summary>
    public DirtyBlock Reset(long number, long dirtySince)
    {
        (Number, Version, DirtySince, RedirtiedSince, InFlight, Older, Younger) = (number, 0, dirtySince, 0, default, null, null);
        return this;
    }
}

/// <summary>
/// <see cref="Count"/> blocks of 4 KiB in one 2 MiB range of native memory, aligned to 2 MiB and
/// advised to the kernel as huge pages: memory for dirty blocks that O_DIRECT writes from.
/// </summary>
/// <remarks>
/// Why huge pages: the disk takes a write faster the fewer physically separate pieces it comes
/// in. On this project's test host, 1 MiB O_DIRECT writes through io_uring from one huge page
/// ran at 1.2-1.4× the speed of the same writes from ordinary pages (perf/RESULTS.md, "Notes on
/// noisy-neighbour"); a write-back batch of a streaming writer is consecutive blocks of one slab
/// (<see cref="DirtyBlockPool"/>: "In address order"). Where the kernel has no huge page to give
/// (THP off, memory fragmented), the advice is ignored and the slab is ordinary memory.
/// <para>
/// <b>Lifetime.</b> A block handed out lives in some instance's map, a write-back batch or the
/// pool, and each holds the slab through its <see cref="Memory{T}"/>; the slab's memory is freed
/// by its finalizer once none does, so no path has to free it. Every span or pointer into a
/// slab is taken while such a holder is alive and used before it lets go: under a cache's gate,
/// or, for the device, while the batch that holds the block is on its way.
/// </para>
/// </remarks>
internal sealed unsafe class BlockSlab : MemoryManager<byte>
{
    /// <summary>Blocks per slab: 2 MiB, one huge page.</summary>
    public const int Count = 512;

    private const int Bytes = Count * UpperStore.BlockSize;
    private byte* _pointer;

    public BlockSlab()
    {
        _pointer = (byte*)NativeMemory.AlignedAlloc(Bytes, Bytes);
        _ = LibC.madvise(_pointer, Bytes, LibC.MADV_HUGEPAGE); // a preference: ordinary pages if refused
        GC.AddMemoryPressure(Bytes);
    }

#pragma warning disable CA2015 // The finalizer is the point (see "Lifetime"): no span outlives a holder of the slab.
    ~BlockSlab() => Dispose(false);
#pragma warning restore CA2015

    /// <summary>Its blocks, each a 4 KiB aligned memory, the last first (see <see cref="DirtyBlockPool"/>: "In address order").</summary>
    public IEnumerable<Memory<byte>> Blocks()
    {
        for (int i = Count - 1; i >= 0; i--)
        {
            yield return Memory.Slice(i * UpperStore.BlockSize, UpperStore.BlockSize);
        }
    }

    public override Span<byte> GetSpan() => new(_pointer, Bytes);

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, Bytes);
        return new MemoryHandle(_pointer + elementIndex);
    }

    /// <summary>Native memory never moves: nothing to undo.</summary>
    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
            GC.RemoveMemoryPressure(Bytes);
        }
    }
}

/// <summary>
/// Spare dirty blocks and block memory, shared by every instance of a cache, so that taking a
/// block into the cache allocates nothing once the pool is warm.
/// </summary>
/// <remarks>
/// Why: allocating a 4 KiB array per block written, at hundreds of MiB/s, made the .NET GC
/// pause the whole server many times a second (gen1 collections copying blocks that live until
/// they are written back), and a neighbour's steady small writes felt those pauses as 10+ ms of
/// latency (perf/noisy-neighbour). Reused blocks end up in gen2 and cause no collections.
/// <para>
/// Two stacks: the <see cref="DirtyBlock"/> objects, and 4 KiB memories from
/// <see cref="BlockSlab"/>s (a block taken gets one; a write to a block being written back takes
/// another, see <see cref="DirtyBlock"/>). A block or a memory comes here only after its cache
/// let go of it, under that cache's gate, so it is never in two places. Each stack keeps at most
/// the capacity (a burst beyond it is left to the GC), and <see cref="TrimIfIdle"/> gives half of
/// the spares back whenever none was taken for a second, so an idle server does not hold a
/// burst's memory for ever (a slab goes once none of its blocks is held). Its lock is a leaf:
/// taken inside a cache's gate, and nothing is taken inside it.
/// </para>
/// <para>
/// <b>In address order.</b> A write takes its blocks in ascending order, and write-back gives
/// a batch's blocks back in descending order, so the next write pops them in ascending address
/// order again: consecutive blocks of a streaming writer sit side by side in memory, and the
/// device gets a batch as a few long iovecs rather than one per 4 KiB. A new slab is pushed last
/// block first for the same reason. Only a preference: any order is correct.
/// </para>
/// </remarks>
internal sealed class DirtyBlockPool(int capacity)
{
    private static readonly TimeSpan IdleTime = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private readonly Stack<DirtyBlock> _spare = new();
    private readonly Stack<Memory<byte>> _memory = new();
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

    /// <summary>Spare block memories held now.</summary>
    public int MemoryCount
    {
        get
        {
            lock (_lock)
            {
                return _memory.Count;
            }
        }
    }

    /// <summary>A block for the cache's map, with memory of its own: spare ones if there are.</summary>
    public DirtyBlock Take(long number, long dirtySince)
    {
        lock (_lock)
        {
            _lastTaken = Stopwatch.GetTimestamp();
            var block = _spare.TryPop(out var spare) ? spare : new DirtyBlock();
            block.Data = TakeMemoryLocked();
            return block.Reset(number, dirtySince);
        }
    }

    /// <summary>4 KiB of block memory (what a block written during its write-back moves to).</summary>
    public Memory<byte> TakeMemory()
    {
        lock (_lock)
        {
            _lastTaken = Stopwatch.GetTimestamp();
            return TakeMemoryLocked();
        }
    }

    /// <summary>Takes back a block that left a cache's map, and its memory (each kept if there is room).</summary>
    public void Give(DirtyBlock block)
    {
        lock (_lock)
        {
            GiveMemoryLocked(block.Data);
            block.Data = default;
            if (_spare.Count < capacity)
            {
                _spare.Push(block);
            }
        }
    }

    /// <summary>Takes back block memory no block or write-back uses any more.</summary>
    public void GiveMemory(Memory<byte> memory)
    {
        lock (_lock)
        {
            GiveMemoryLocked(memory);
        }
    }

    /// <summary>Gives half of the spares to the GC if none was taken for a second (the background writer calls it).</summary>
    public void TrimIfIdle()
    {
        lock (_lock)
        {
            if ((_spare.Count > 0 || _memory.Count > 0) && Stopwatch.GetElapsedTime(_lastTaken) >= IdleTime)
            {
                Halve(_spare);
                Halve(_memory);
                _lastTaken = Stopwatch.GetTimestamp();
            }
        }
    }

    private static void Halve<T>(Stack<T> stack)
    {
        for (int drop = (stack.Count + 1) / 2; drop > 0; drop--)
        {
            stack.Pop();
        }

        stack.TrimExcess();
    }

    private Memory<byte> TakeMemoryLocked()
    {
        if (_memory.Count == 0)
        {
            foreach (var memory in new BlockSlab().Blocks())
            {
                _memory.Push(memory);
            }
        }

        return _memory.Pop();
    }

    private void GiveMemoryLocked(Memory<byte> memory)
    {
        if (!memory.IsEmpty && _memory.Count < capacity)
        {
            _memory.Push(memory);
        }
    }
}
