using System.Buffers;
using System.Diagnostics;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// One instance's dirty blocks: written by clients, acknowledged, not yet in the store.
/// </summary>
/// <remarks>
/// Design.
/// <para>
/// <b>States of a block.</b> Absent (the store, the base or zeros hold its content), dirty
/// (here, newer than the store), or dirty and being written back (its bytes are on their way
/// to the store, written from where they are: see <see cref="DirtyBlock"/>). A write to a
/// block being written back puts its bytes in new memory and marks it re-dirtied: when the
/// write-back ends, it gives the old memory back and the block stays dirty instead of leaving.
/// </para>
/// <para>
/// <b>Invariants.</b> A block leaves only when a write-back of exactly its current version has
/// been mapped in the store, so a reader that misses it here finds that version there. At
/// most one write-back of a block is in flight, so the store maps a block's versions in order.
/// A block never changes its logical content except by a client write or zero, and those
/// hold the export's range lock: code holding that lock may read a block (here or in the
/// store) and rely on it until it writes.
/// </para>
/// <para>
/// <b>Flush scope.</b> Every write gets the next sequence number; a block remembers the number
/// of the write that made it dirty (<see cref="DirtyBlock.DirtySince"/>). A flush takes the
/// current number N and writes back every block dirty since N or earlier, waiting for
/// write-backs others started; blocks first dirtied after N are not its business. Writes
/// that complete while it runs may ride along (newer content is allowed to become durable
/// early), but it never waits for them.
/// </para>
/// <para>
/// <b>Quota.</b> The store owns the accounting (<see cref="StoreInstance.TryReserve"/>): before
/// taking blocks, a write asks it once for room, and it reserves the blocks that are new space
/// or refuses. It ends a reservation itself when a write-back maps the block or a zero drops it.
/// </para>
/// <para>
/// <b>Order of age.</b> <see cref="_byAge"/> links every dirty block from the oldest DirtySince to
/// the youngest, so a flush finds its blocks as a prefix and the background writer the oldest
/// ones without sorting the whole map under the gate (the blocks a flush takes are sorted into
/// block order after the gate is let go). The links live in the pooled blocks: a SortedSet
/// beside the map cost a node per dirty block, and on 1 MiB writes the GC's fresh memory for
/// those nodes was 13-17 % of the server's samples (perf/RESULTS.md, matrix notes).
/// </para>
/// <para>
/// <b>Write-backs in flight.</b> At most <see cref="CacheOptions.WriteBacksInFlight"/> (two)
/// batches of this instance are on their way to the store at once: a flush or a background
/// batch waits for a turn (<see cref="_turns"/>) before it takes its blocks, and gives the turn
/// back when its write has returned; a flush takes its next batch while the last one is
/// written. A guest's fsync at queue depth 8 arrives as eight FLUSH requests; each used to
/// write batches of its own, so eight 8 MiB writes of one tenant stood in the device's queue
/// in front of a neighbour's 64 KiB flush (perf/RESULTS.md, "Notes on noisy-neighbour"). Now
/// they share the turns, and a flush still ends only when every block up to its point is in
/// the store. The turns are this instance's: a neighbour never waits for them.
/// </para>
/// <para>
/// <b>Locking.</b> <see cref="_gate"/> guards the map, the order of age and the blocks' bytes, and is held only
/// for memory work: every copy into or out of a block happens under it, so nobody ever sees
/// a block's buffer while another thread reuses it. The one reader outside it is the device,
/// writing a batch's <see cref="DirtyBlock.InFlight"/> bytes, which nothing changes or reuses
/// until that batch has finished. It is taken before the store's own
/// locks (the quota question and zeroing ask the store under it) and never inside them. A
/// turn is taken before the gate, never while holding it.
/// </para>
/// </remarks>
#pragma warning disable CA1001 // _turns never hands out its wait handle, so it holds nothing to dispose; a cache is detached and reattached, never closed.
internal sealed partial class InstanceCache
#pragma warning restore CA1001
{
    private const int Block = UpperStore.BlockSize;
    private readonly Lock _gate = new();
    private readonly Dictionary<long, DirtyBlock> _blocks = [];
    private readonly AgeOrder _byAge = new();
    private readonly WriteBackCache _owner;
    private long _sequence;
    private long _dirtyBytes;
    private long _dirtySince;   // Stopwatch timestamp of the oldest dirty data; 0 while clean
    private int _throttled;     // writers waiting for this instance's write-back
    private int _writingBack;   // blocks marked WritingBack (some may have been discarded since)
    private TaskCompletionSource _progress = NewSignal();
    private Exception? _writeBackFailure;
    private readonly SemaphoreSlim _turns; // see "Write-backs in flight"
    private readonly Stack<Batch> _spareBatches = new(); // finished batches to reuse, at most one per turn; under the gate

    public InstanceCache(WriteBackCache owner, StoreInstance instance)
    {
        _owner = owner;
        _turns = new SemaphoreSlim(owner.Options.WriteBacksInFlight);
        Instance = instance;
        Counters = new InstanceCounters(instance.Name, owner.FlushDuration);
    }

    public StoreInstance Instance { get; }

    public InstanceCounters Counters { get; }

    public long DirtyBytes => Interlocked.Read(ref _dirtyBytes);

    /// <summary>Whether a writer of this instance is waiting for its write-back.</summary>
    public bool HasThrottledWriters => Volatile.Read(ref _throttled) > 0;

    /// <summary>Whether the oldest dirty data has waited longer than <paramref name="age"/>.</summary>
    public bool DirtyOlderThan(TimeSpan age)
    {
        long since = Interlocked.Read(ref _dirtySince);
        return since != 0 && age != Timeout.InfiniteTimeSpan && Stopwatch.GetElapsedTime(since) >= age;
    }

    /// <summary>The sequence number of the last write: a flush now covers it and everything before.</summary>
    public long FlushPoint()
    {
        lock (_gate)
        {
            return _sequence;
        }
    }

    /// <summary>
    /// Takes whole blocks of data into the cache, starting at virtual block <paramref name="first"/>.
    /// If the store refuses the new space (the quota), nothing changes and it returns false (see
    /// "Quota"). The caller holds the range lock, so no zeroing changes the range's mapping
    /// meanwhile; write-backs only map blocks that are held here.
    /// </summary>
    public bool TryWrite(long first, ReadOnlyMemory<byte> data) => TryWrite(first, new ReadOnlySequence<byte>(data));

    /// <summary>
    /// <see cref="TryWrite(long, ReadOnlyMemory{byte})"/> from bytes in any number of pieces of
    /// any size (a connection's receive buffers): each block is copied once, straight from them.
    /// </summary>
    public bool TryWrite(long first, in ReadOnlySequence<byte> data)
    {
        if (data.Length % Block != 0)
        {
            throw new ArgumentException($"a write to the cache must be whole blocks, not {data.Length} bytes", nameof(data));
        }

        long added = 0;
        bool becameDirty;
        var source = new SequenceReader<byte>(data);
        lock (_gate)
        {
            if (!Instance.TryReserve(first, data.Length / Block))
            {
                return false;
            }

            long sequence = ++_sequence;
            for (int i = 0; i * (long)Block < data.Length; i++)
            {
                if (_blocks.TryGetValue(first + i, out var block))
                {
                    if (block.WritingBack && block.Data.Equals(block.InFlight))
                    {
                        block.Data = _owner.Blocks.TakeMemory(); // copy on write: the device may be reading the old bytes
                    }

                    CopyBlock(ref source, block.Data.Span);
                    block.Version++;
                    if (block.WritingBack && block.RedirtiedSince == 0)
                    {
                        block.RedirtiedSince = sequence;
                    }
                }
                else
                {
                    var fresh = _owner.Blocks.Take(first + i, sequence);
                    CopyBlock(ref source, fresh.Data.Span);
                    _blocks.Add(first + i, fresh);
                    _byAge.Append(fresh);
                    added += Block;
                }
            }

            becameDirty = added > 0 && _dirtyBytes == 0;
            if (becameDirty)
            {
                Interlocked.Exchange(ref _dirtySince, Stopwatch.GetTimestamp());
            }

            Interlocked.Add(ref _dirtyBytes, added);
        }

        _owner.AddDirty(added);
        if (becameDirty)
        {
            _owner.MarkDirty(this); // after the bytes are counted (WriteBackCache: "Thousands of idle instances")
        }

        return true;
    }

    /// <summary>The next block of a write (whole blocks: checked before anything changed).</summary>
    private static void CopyBlock(ref SequenceReader<byte> source, Span<byte> destination)
    {
        bool whole = source.TryCopyTo(destination);
        Debug.Assert(whole, "TryWrite checks that the data is whole blocks");
        source.Advance(destination.Length);
    }

    /// <summary>
    /// Copies the cached blocks of [first, first+count) into <paramref name="destination"/> and
    /// lists the runs it does not hold, for the caller to read from the store.
    /// </summary>
    public void Read(long first, long count, Span<byte> destination, List<(long First, long Count)> misses)
    {
        lock (_gate)
        {
            if (_blocks.Count == 0)
            {
                misses.Add((first, count));
                return;
            }

            for (long b = first; b < first + count; b++)
            {
                if (_blocks.TryGetValue(b, out var block))
                {
                    block.Data.Span.CopyTo(destination.Slice((int)((b - first) * Block), Block));
                }
                else if (misses.Count > 0 && misses[^1].First + misses[^1].Count == b)
                {
                    misses[^1] = (misses[^1].First, misses[^1].Count + 1);
                }
                else
                {
                    misses.Add((b, 1));
                }
            }
        }
    }

    /// <summary>Runs of [first, first+count) held here, ascending (for block status).</summary>
    public List<(long First, long Count)> HeldRuns(long first, long count)
    {
        List<long> held;
        lock (_gate)
        {
            held = BlocksIn(first, count);
        }

        held.Sort();
        var runs = new List<(long First, long Count)>();
        foreach (long b in held)
        {
            if (runs.Count > 0 && runs[^1].First + runs[^1].Count == b)
            {
                runs[^1] = (runs[^1].First, runs[^1].Count + 1);
            }
            else
            {
                runs.Add((b, 1));
            }
        }

        return runs;
    }

    /// <summary>
    /// Zeroes whole blocks of a range: in the store (which also ends their reservations) and
    /// here, by dropping them, in one step, once no block of the range is being written back:
    /// a write-back finishing later would map old data over the zeros. The caller holds the
    /// range lock, so no write adds blocks meanwhile.
    /// </summary>
    public async Task ZeroAsync(long first, long count)
    {
        while (true)
        {
            Task wait;
            long removed = 0;
            lock (_gate)
            {
                var inRange = BlocksIn(first, count);
                if (!inRange.Any(b => _blocks[b].WritingBack))
                {
                    // Store first, then the cache, in one step under the gate: a reader sees the
                    // cached data or the store's new state, never the store's older content.
                    _owner.Store.Zero(Instance, first, count);
                    foreach (long b in inRange)
                    {
                        Forget(b);
                        removed += Block;
                    }

                    Shrink(removed);
                    return;
                }

                wait = _progress.Task;
            }

            await wait;
        }
    }

    /// <summary>
    /// Forgets every dirty block: the instance was deleted, or the whole store is abandoned (a
    /// crash simulation). Their reservations stay with the store's instance, which is gone too.
    /// A block on its way to the store is left to its write-back, which gives it back when the
    /// device is done with its bytes (<see cref="Finish"/>).
    /// </summary>
    public void Discard()
    {
        lock (_gate)
        {
            long removed = _blocks.Count * (long)Block;
            foreach (var block in _blocks.Values)
            {
                if (!block.WritingBack)
                {
                    _owner.Blocks.Give(block);
                }
                else if (!block.Data.Equals(block.InFlight))
                {
                    _owner.Blocks.GiveMemory(block.Data);
                    block.Data = block.InFlight;
                }
            }

            _blocks.Clear();
            _byAge.Clear();
            Shrink(removed);
        }
    }

    /// <summary>Blocks of the range held here (walking whichever is smaller: the range or the map).</summary>
    private List<long> BlocksIn(long first, long count) => count <= _blocks.Count
        ? [.. Enumerable.Range(0, (int)Math.Min(count, int.MaxValue)).Select(i => first + i).Where(_blocks.ContainsKey)]
        : [.. _blocks.Keys.Where(b => b >= first && b < first + count)];

    /// <summary>Takes a block out of the map and gives it to the pool; the caller holds the gate.</summary>
    private void Forget(long b)
    {
        _blocks.Remove(b, out var block);
        _byAge.Remove(block!);
        _owner.Blocks.Give(block!);
    }

    /// <summary>Accounts for blocks that left; the caller holds the gate.</summary>
    private void Shrink(long removed)
    {
        Interlocked.Add(ref _dirtyBytes, -removed);
        if (_blocks.Count == 0)
        {
            Interlocked.Exchange(ref _dirtySince, 0);
        }

        _owner.AddDirty(-removed);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
