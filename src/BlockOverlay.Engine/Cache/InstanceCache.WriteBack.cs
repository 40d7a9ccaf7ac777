using System.Buffers;
using System.Diagnostics;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// Write-back of one instance's dirty blocks: flushes, background batches, and the writers
/// throttled behind them. The states, invariants and locking are in InstanceCache.cs.
/// </summary>
internal sealed partial class InstanceCache
{
    /// <summary>
    /// Writes back every block dirty since <paramref name="upTo"/> or earlier (see "Flush scope"),
    /// in batches of at most <paramref name="batchBlocks"/>, each in its turn (see "Write-backs
    /// in flight"). Returns the data bytes it wrote.
    /// </summary>
    public async Task<long> WriteBackAsync(long upTo, WriteReason reason, int batchBlocks)
    {
        long written = 0;
        while (true)
        {
            using var candidates = DirtyUpTo(upTo);
            if (candidates.Count == 0)
            {
                return written;
            }

            // Each batch is taken when a turn is free and written while the next one is taken:
            // with two turns, a large flush keeps the device busy on its own.
            var writes = new List<Task<long>>();
            int next = 0;
            while (next < candidates.Count && !writes.Exists(w => w.IsFaulted))
            {
                await _turns.WaitAsync();
                Task<long>? write = null;
                try
                {
                    if (Take(candidates.Span, ref next, batchBlocks, upTo) is { } batch)
                    {
                        write = WriteInTurnAsync(batch, reason);
                        writes.Add(write);
                    }
                }
                finally
                {
                    if (write is null) // nothing to write, or Take failed: the turn must not be lost with it
                    {
                        _turns.Release();
                    }
                }
            }

            written += (await Task.WhenAll(writes)).Sum();

            // What is left was being written back by someone else, or was written again
            // (before our point) while we wrote it: wait for those write-backs, then go again.
            Task? wait;
            lock (_gate)
            {
                wait = _writingBack > 0 && AgedUpTo(upTo).Any(b => b.WritingBack) ? _progress.Task : null;
            }

            if (wait is not null)
            {
                await wait;
            }
        }
    }

    /// <summary>
    /// Writes back one batch of dirty blocks (background work): the longest dirty first, by the
    /// sequence number of the write that dirtied them, then written in block order.
    /// </summary>
    public async Task<long> WriteBackSomeAsync(int batchBlocks)
    {
        await _turns.WaitAsync();
        try
        {
            using var picked = OldestNotWritingBack(batchBlocks);
            int next = 0;
            if (Take(picked.Span, ref next, batchBlocks, long.MaxValue) is not { } batch)
            {
                return 0;
            }

            long written = await WriteBatchAsync(batch, WriteReason.Background);
            Counters.AddWriteBack(written);
            return written;
        }
        finally
        {
            _turns.Release();
        }
    }

    /// <summary>
    /// Waits until this instance holds less than the limits allow (<paramref name="overLimit"/>
    /// says when it does not), asking the background writer for its write-back. Only this
    /// instance's writers wait here. A write-back that keeps failing fails the wait with its error.
    /// </summary>
    public async ValueTask ThrottleAsync(Func<InstanceCache, bool> overLimit)
    {
        if (!overLimit(this))
        {
            return;
        }

        long start = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _throttled);
        try
        {
            while (overLimit(this))
            {
                Task progress;
                lock (_gate)
                {
                    if (_writeBackFailure is { } failure)
                    {
                        throw new IOException($"write-back of instance '{Instance.Name}' failed: {failure.Message}", failure);
                    }

                    progress = _progress.Task;
                }

                _owner.Wake();
                // Looked at again after a while even without progress: a neighbour's write-back
                // may have brought the global total down.
                await Task.WhenAny(progress, Task.Delay(_owner.Options.BackgroundInterval));
            }
        }
        finally
        {
            Interlocked.Decrement(ref _throttled);
            Counters.AddThrottled(Stopwatch.GetTimestamp() - start);
        }
    }

    /// <summary>Waits until no write-back of this instance is on its way (the caller stopped new ones).</summary>
    public async Task WhenNoWriteBackAsync()
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                if (_writingBack == 0)
                {
                    return;
                }

                wait = _progress.Task;
            }

            await wait;
        }
    }

    /// <summary>
    /// Blocks dirty since <paramref name="upTo"/> or earlier, ascending (sorted outside the
    /// gate), in an array rented from the shared pool: a flush lists every block of its scope,
    /// tens of thousands for a guest's large fsync, and lists them again after every wait for
    /// another write-back, so a fresh list each time was most of what the server allocated
    /// beside a noisy neighbour (perf/RESULTS.md, "Notes on noisy-neighbour": the GC's pauses).
    /// </summary>
    private BlockList DirtyUpTo(long upTo)
    {
        long[] numbers;
        int count = 0;
        lock (_gate)
        {
            numbers = ArrayPool<long>.Shared.Rent(Math.Max(1, _blocks.Count));
            foreach (var block in AgedUpTo(upTo))
            {
                numbers[count++] = block.Number;
            }
        }

        numbers.AsSpan(0, count).Sort();
        return new BlockList(numbers, count);
    }

    /// <summary>Up to <paramref name="max"/> of the oldest dirty blocks not on their way already, ascending (a background batch).</summary>
    private BlockList OldestNotWritingBack(int max)
    {
        long[] numbers = ArrayPool<long>.Shared.Rent(max);
        int count = 0;
        lock (_gate)
        {
            for (var block = _byAge.Oldest; block is not null && count < max; block = block.Younger)
            {
                if (!block.WritingBack)
                {
                    numbers[count++] = block.Number;
                }
            }
        }

        numbers.AsSpan(0, count).Sort();
        return new BlockList(numbers, count);
    }

    /// <summary>Blocks dirty since <paramref name="upTo"/> or earlier, oldest first; the caller holds the gate.</summary>
    private IEnumerable<DirtyBlock> AgedUpTo(long upTo)
    {
        for (var block = _byAge.Oldest; block is not null && block.DirtySince <= upTo; block = block.Younger)
        {
            yield return block;
        }
    }

    /// <summary>
    /// Marks up to <paramref name="max"/> of the candidates (from <paramref name="next"/> on)
    /// as being written back, in order. Their bytes are written from where they are, so from
    /// now until <see cref="Finish"/> a write to one of them moves it to new memory: an
    /// instance holds at most its dirty bytes plus one block per block in flight. Null if none
    /// of them is there to take any more.
    /// </summary>
    private Batch? Take(ReadOnlySpan<long> candidates, ref int next, int max, long upTo)
    {
        lock (_gate)
        {
            var batch = _spareBatches.TryPop(out var spare) ? spare : new Batch();
            for (; next < candidates.Length && batch.Blocks.Count < max; next++)
            {
                long b = candidates[next];
                if (_blocks.TryGetValue(b, out var block) && !block.WritingBack && block.DirtySince <= upTo)
                {
                    block.InFlight = block.Data;
                    _writingBack++;
                    batch.Add(block);
                }
            }

            if (batch.Blocks.Count == 0)
            {
                KeepSpare(batch);
                return null;
            }

            return batch;
        }
    }

    /// <summary>Writes a batch taken in a turn, then gives back the turn.</summary>
    private async Task<long> WriteInTurnAsync(Batch batch, WriteReason reason)
    {
        try
        {
            return await WriteBatchAsync(batch, reason);
        }
        finally
        {
            _turns.Release();
        }
    }

    private async Task<long> WriteBatchAsync(Batch batch, WriteReason reason)
    {
        long bytes = batch.Blocks.Count * (long)Block;
        try
        {
            await _owner.Store.WriteBlocksAsync(Instance, batch.Runs, batch.Segments, reason);
        }
        catch (Exception e)
        {
            Finish(batch, e);
            throw;
        }

        Finish(batch, null);
        return bytes;
    }

    /// <summary>Ends a write-back: blocks still at the version it wrote leave; the others stay dirty.</summary>
    private void Finish(Batch batch, Exception? failure)
    {
        TaskCompletionSource progress;
        lock (_gate)
        {
            long removed = 0;
            _writingBack -= batch.Blocks.Count;
            for (int i = batch.Blocks.Count - 1; i >= 0; i--) // descending: see DirtyBlockPool, "In address order"
            {
                var (block, version) = batch.Blocks[i];
                var written = block.InFlight;
                block.InFlight = default;
                if (!_blocks.TryGetValue(block.Number, out var held) || held != block)
                {
                    _owner.Blocks.Give(block); // discarded meanwhile, and left to us (see Discard)
                    continue;
                }

                if (!block.Data.Equals(written))
                {
                    _owner.Blocks.GiveMemory(written); // written again meanwhile, into new memory
                }

                if (failure is null && block.Version == version)
                {
                    Forget(block.Number);
                    removed += Block;
                }
                else if (block.RedirtiedSince != 0)
                {
                    // Written again while on its way: dirty since that write (or, if this write-back
                    // failed, still since its first one).
                    if (failure is null)
                    {
                        block.DirtySince = block.RedirtiedSince;
                        _byAge.Reposition(block);
                    }

                    block.RedirtiedSince = 0;
                }
            }

            _writeBackFailure = failure;
            Shrink(removed);
            (progress, _progress) = (_progress, NewSignal());
            KeepSpare(batch);
        }

        progress.SetResult();
    }

    /// <summary>Keeps a batch that is done with to reuse, at most one per turn; the caller holds the gate.</summary>
    private void KeepSpare(Batch batch)
    {
        if (_spareBatches.Count < _owner.Options.WriteBacksInFlight)
        {
            batch.Clear();
            _spareBatches.Push(batch);
        }
    }

    /// <summary>Block numbers in an array from <see cref="ArrayPool{T}.Shared"/>, which <see cref="Dispose"/> gives back.</summary>
    private readonly struct BlockList(long[] numbers, int count) : IDisposable
    {
        public int Count => count;

        public ReadOnlySpan<long> Span => numbers.AsSpan(0, count);

        public void Dispose() => ArrayPool<long>.Shared.Return(numbers);
    }

    /// <summary>
    /// Blocks being written back together, ascending, with the versions and the bytes they had
    /// when taken. Reused (see <see cref="_spareBatches"/>): its lists grown anew for every 1 MiB
    /// batch were most of what the server allocated beside a noisy neighbour once the flush's
    /// block list was pooled.
    /// </summary>
    private sealed class Batch
    {
        private ReadOnlyMemory<byte>[] _segments = new ReadOnlyMemory<byte>[64];

        public List<(DirtyBlock Block, long Version)> Blocks { get; } = [];

        public List<(long VirtualBlock, long Length)> Runs { get; } = [];

        /// <summary>Each block's bytes, in the order of <see cref="Blocks"/>: what the store writes.</summary>
        public ReadOnlyMemory<ReadOnlyMemory<byte>> Segments => _segments.AsMemory(0, Blocks.Count);

        public void Add(DirtyBlock block)
        {
            if (Blocks.Count == _segments.Length)
            {
                Array.Resize(ref _segments, _segments.Length * 2);
            }

            _segments[Blocks.Count] = block.InFlight;
            Blocks.Add((block, block.Version));
            long b = block.Number;
            if (Runs.Count > 0 && Runs[^1].VirtualBlock + Runs[^1].Length == b)
            {
                Runs[^1] = (Runs[^1].VirtualBlock, Runs[^1].Length + 1);
            }
            else
            {
                Runs.Add((b, 1));
            }
        }

        /// <summary>Empties it, holding on to no block or memory.</summary>
        public void Clear()
        {
            Array.Clear(_segments, 0, Blocks.Count);
            Blocks.Clear();
            Runs.Clear();
        }
    }
}
