using System.Buffers.Binary;
using BlockOverlay.Io;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Journal;

/// <summary>
/// The metadata journal: a circular region of the device, appended in durable batches.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>States.</b> The region holds, from the <i>tail</i> (the replay position recorded in the
/// superblock) to the <i>head</i> (where the next batch goes), the batches written since the
/// last checkpoint, with consecutive sequence numbers. Everything else is free: stale batches
/// of earlier laps (lower sequence numbers) or never written. A batch that would run past the
/// end of the region is preceded by a one-block Wrap batch, and the log continues at block 0.
/// </para>
/// <para>
/// <b>Group commit.</b> Callers queue commits and wait. One writer at a time (the write gate)
/// takes everything queued, packs it into one batch of at most <see cref="MaxBatchBlocks"/>
/// blocks and writes it durably (FUA); callers whose commits it carried are released when
/// it completes. While it is in flight, new commits queue for the next batch, so under
/// load one device write carries many commits. Each commit stays one instance's; a
/// commit larger than a batch is split into several commits of the same instance (its
/// records are idempotent "set this range" operations, so a prefix of them surviving a
/// crash is a valid state: some of an unacknowledged flush's writes became durable).
/// </para>
/// <para>
/// <b>Durability and recovery.</b> Exactly one batch is in flight at a time and each is durable
/// before the next starts, so after a crash only the last batch can be torn. Replay reads from
/// the tail while each position holds the next sequence number of this store with an intact
/// checksum; the first that does not is the end. If a later intact batch with a higher sequence
/// exists anyway, the log was damaged in the middle, and opening is refused rather than
/// silently dropping committed records.
/// </para>
/// <para>
/// <b>Space.</b> The head may not come within one block of the tail. When a batch does not fit,
/// its commits fail with <see cref="JournalFullException"/>; deciding to checkpoint is the
/// caller's (the checkpointer's), and a checkpoint moves the tail forward through
/// <see cref="Release"/>. The journal never calls up into the store.
/// </para>
/// </remarks>
internal sealed class MetadataJournal : IDisposable
{
    /// <summary>Largest batch in blocks (1 MiB), bounding one device write and the replay buffer.</summary>
    public const int MaxBatchBlocks = 256;
    private const int BlockSize = Superblock.Size;

    private readonly IBlockDevice _device;
    private readonly Guid _storeId;
    private readonly long _start;
    private readonly long _blocks;
    private readonly int _maxPayload;
    private readonly StoreCounters _counters;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Lock _lock = new();
    private readonly Queue<Pending> _queue = new();
    private long _head;
    private long _tail;
    private long _tailMoves;
    private ulong _nextSequence;

    /// <param name="tail">Where replay starts (the superblock's replay position): batches from here on are still needed.</param>
    /// <param name="head">Where the next batch goes (where replay ended).</param>
    /// <param name="sequence">The next batch's sequence number.</param>
    /// <param name="counters">Where each batch's bytes are counted, once, by the writer of the batch.</param>
    public MetadataJournal(IBlockDevice device, Guid storeId, long start, long blocks, long tail, long head, ulong sequence,
        StoreCounters counters)
    {
        _counters = counters;
        _device = device;
        _storeId = storeId;
        _start = start;
        _blocks = blocks;
        _tail = tail;
        _head = head;
        _nextSequence = sequence;
        // A batch never takes more than a quarter of the region, so any batch fits once a
        // checkpoint has emptied the journal, however small the journal is.
        _maxPayload = (int)(Math.Min(MaxBatchBlocks, Math.Max(1, blocks / 4)) * BlockSize) - JournalFormat.BatchHeaderBytes;
    }

    /// <summary>Where the next batch goes and its sequence: a checkpoint's replay start.</summary>
    public (long Position, ulong Sequence) Head
    {
        get
        {
            lock (_lock)
            {
                return (_head, _nextSequence);
            }
        }
    }

    /// <summary>How often the tail has moved: a caller that found the journal full checkpoints only if it has not moved since.</summary>
    public long TailMoves
    {
        get
        {
            lock (_lock)
            {
                return _tailMoves;
            }
        }
    }

    /// <summary>Blocks between tail and head.</summary>
    public long UsedBlocks
    {
        get
        {
            lock (_lock)
            {
                return Used();
            }
        }
    }

    /// <summary>
    /// Makes the commit durable; completes when it is. Returns the sequence of the (last) batch
    /// that carried it. Fails if any part of a split commit failed (the parts are written in
    /// order, so the last may succeed after an earlier one failed).
    /// </summary>
    /// <exception cref="JournalFullException">Its batch did not fit; nothing of it was written.</exception>
    public async Task<ulong> CommitAsync(JournalCommit commit)
    {
        var pending = Split(commit).Select(c => new Pending(c)).ToList();
        lock (_lock)
        {
            pending.ForEach(_queue.Enqueue);
        }

        var last = pending[^1];
        while (!last.Done.Task.IsCompleted)
        {
            await _gate.WaitAsync();
            try
            {
                if (!last.Done.Task.IsCompleted)
                {
                    await WriteQueuedAsync();
                }
            }
            finally
            {
                _gate.Release();
            }
        }

        await Task.WhenAll(pending.Select(p => p.Done.Task));
        return await last.Done.Task;
    }

    /// <summary>Moves the tail: everything before <paramref name="position"/> is folded into a durable checkpoint.</summary>
    public void Release(long position)
    {
        lock (_lock)
        {
            _tail = position;
            _tailMoves++;
        }
    }

    /// <summary>
    /// Reads the log from the replay position. Returns the commits in order and the position
    /// and sequence where the next batch goes. A log damaged in the middle refuses (see
    /// <see cref="FindIntactBatchPastAsync"/>).
    /// </summary>
    public static async Task<(List<JournalCommit> Commits, long Position, ulong Sequence)> ReplayAsync(
        IBlockDevice device, Superblock superblock)
    {
        var replayed = await ReadValidPrefixAsync(device, superblock);
        // After a clean close nothing lies past the replay point; only a crash can leave
        // (or hide) anything there.
        if (!superblock.Clean && await FindIntactBatchPastAsync(device, superblock, replayed.Sequence) is { } damage)
        {
            throw new StoreFormatException(damage);
        }

        return replayed;
    }

    /// <summary>
    /// The commits of the batches from the replay position on while each is the next sequence
    /// of this store and intact, and the position and sequence where that prefix ends. A commit
    /// or record damaged inside an intact batch is a <see cref="StoreFormatException"/>.
    /// </summary>
    public static async Task<(List<JournalCommit> Commits, long Position, ulong Sequence)> ReadValidPrefixAsync(
        IBlockDevice device, Superblock superblock)
    {
        var commits = new List<JournalCommit>();
        using var buffer = new AlignedBuffer(MaxBatchBlocks * BlockSize);
        long position = superblock.ReplayPosition;
        ulong sequence = superblock.ReplaySequence;
        long start = superblock.JournalStart, blocks = superblock.JournalBlocks;
        while (true)
        {
            var first = buffer.Memory[..BlockSize];
            await device.ReadAsync((start + position) * BlockSize, first);
            if (!JournalFormat.TryReadHeader(first.Span, superblock.StoreId, sequence, Math.Min(MaxBatchBlocks, blocks - position), out var header))
            {
                break;
            }

            var batch = buffer.Memory[..(header.Blocks * BlockSize)];
            if (header.Blocks > 1)
            {
                await device.ReadAsync((start + position + 1) * BlockSize, batch[BlockSize..]);
            }

            if (!JournalFormat.IsIntact(batch.Span, header))
            {
                break; // the torn tail
            }

            string where = $"journal batch {sequence} at block {start + position}";
            if (header.Kind == BatchKind.Commits)
            {
                commits.AddRange(JournalFormat.DecodeCommits(batch.Span, header, where));
                position = (position + header.Blocks) % blocks;
            }
            else
            {
                position = 0;
            }

            sequence++;
        }

        return (commits, position, sequence);
    }

    /// <summary>
    /// Whether the log ends, at <paramref name="position"/>, in a torn batch: the expected sequence
    /// of this store starts there but fails its checksum (a crash during its write; replay cuts it).
    /// </summary>
    public static async Task<bool> EndsTornAsync(IBlockDevice device, Superblock superblock, long position, ulong sequence)
    {
        using var first = new AlignedBuffer(BlockSize);
        await device.ReadAsync((superblock.JournalStart + position) * BlockSize, first.Memory);
        return JournalFormat.StartsBatch(first.Span, superblock.StoreId, sequence);
    }

    /// <summary>
    /// An intact batch of this store with a sequence past where replay stopped means the log
    /// was damaged in the middle: returns the message that names where (null when there is
    /// none), so recovery refuses instead of losing what follows and the checker reports it.
    /// </summary>
    public static async Task<string?> FindIntactBatchPastAsync(IBlockDevice device, Superblock superblock, ulong stoppedAt)
    {
        long start = superblock.JournalStart, blocks = superblock.JournalBlocks;
        using var buffer = new AlignedBuffer(MaxBatchBlocks * BlockSize);
        using var batch = new AlignedBuffer(MaxBatchBlocks * BlockSize);
        // The region is read a buffer (1 MiB) at a time; only candidate headers cost another read.
        for (long chunk = 0; chunk < blocks; chunk += MaxBatchBlocks)
        {
            int count = (int)Math.Min(MaxBatchBlocks, blocks - chunk);
            await device.ReadAsync((start + chunk) * BlockSize, buffer.Memory[..(count * BlockSize)]);
            for (int i = 0; i < count; i++)
            {
                long p = chunk + i;
                var first = buffer.Memory.Slice(i * BlockSize, BlockSize);
                ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(first.Span[8..]);
                if (sequence <= stoppedAt ||
                    !JournalFormat.TryReadHeader(first.Span, superblock.StoreId, sequence, Math.Min(MaxBatchBlocks, blocks - p), out var header))
                {
                    continue;
                }

                var whole = batch.Memory[..(header.Blocks * BlockSize)];
                await device.ReadAsync((start + p) * BlockSize, whole);
                if (JournalFormat.IsIntact(whole.Span, header))
                {
                    return $"journal: the batch with sequence {stoppedAt} (expected at block {start + superblock.ReplayPosition} onwards) " +
                           $"is missing or corrupt, yet batch {sequence} at block {start + p} is intact: the journal is damaged in the middle";
                }
            }
        }

        return null;
    }

    private async Task WriteQueuedAsync()
    {
        var batch = TakeBatch();
        if (batch.Count == 0)
        {
            return;
        }

        try
        {
            int payload = batch.Sum(p => JournalFormat.EncodedSize(p.Commit));
            int blocks = JournalFormat.BlocksFor(payload);
            EnsureRoom(blocks);
            ulong sequence;
            long position;
            using var buffer = new AlignedBuffer(blocks * BlockSize);
            lock (_lock)
            {
                (position, sequence) = (_head, _nextSequence);
            }

            if (position + blocks > _blocks)
            {
                await WriteWrapAsync(position, sequence);
                (position, sequence) = (0, sequence + 1);
            }

            JournalFormat.EncodeBatch(buffer.Span, _storeId, sequence, BatchKind.Commits, batch.Select(p => p.Commit).ToList());
            await _device.WriteAsync((_start + position) * BlockSize, buffer.Memory, durable: true);
            // Counted here, per batch: with group commit, counting around each commit would count
            // a shared batch once per commit in it.
            bool mapChanges = batch.Exists(p => p.Commit.Records.Any(r => r is MapRecord or ZeroRecord));
            _counters.Add(mapChanges ? WriteReason.Journal : WriteReason.Metadata, blocks * BlockSize);
            lock (_lock)
            {
                _head = (position + blocks) % _blocks;
                _nextSequence = sequence + 1;
            }

            batch.ForEach(p => p.Done.TrySetResult(sequence));
        }
#pragma warning disable CA1031 // Handed on, not swallowed: each waiter rethrows it as it is.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // Every commit in the batch fails with the same exception, a bug included (it stays
            // a bug for whoever reports it; left uncompleted, the other waiters would wait for
            // ever). The next batch goes to the same position with the same sequence.
            batch.ForEach(p => p.Done.TrySetException(e));
        }
    }

    private async Task WriteWrapAsync(long position, ulong sequence)
    {
        using var wrap = new AlignedBuffer(BlockSize);
        JournalFormat.EncodeBatch(wrap.Span, _storeId, sequence, BatchKind.Wrap, []);
        await _device.WriteAsync((_start + position) * BlockSize, wrap.Memory, durable: true);
        _counters.Add(WriteReason.Journal, BlockSize);
        lock (_lock)
        {
            _head = 0;
            _nextSequence = sequence + 1;
        }
    }

    /// <summary>Throws <see cref="JournalFullException"/> unless a batch of <paramref name="blocks"/> fits now, wrap included.</summary>
    private void EnsureRoom(int blocks)
    {
        lock (_lock)
        {
            // A wrap may waste the blocks up to the region's end.
            long wasted = _head + blocks > _blocks ? _blocks - _head : 0;
            long needed = wasted + blocks + 1;
            long free = _blocks - Used();
            if (free < needed)
            {
                throw new JournalFullException(needed, free, _tailMoves);
            }
        }
    }

    private List<Pending> TakeBatch()
    {
        var batch = new List<Pending>();
        int payload = 0;
        lock (_lock)
        {
            while (_queue.TryPeek(out var next))
            {
                int size = JournalFormat.EncodedSize(next.Commit);
                if (batch.Count > 0 && payload + size > _maxPayload)
                {
                    break;
                }

                batch.Add(_queue.Dequeue());
                payload += size;
            }
        }

        return batch;
    }

    private long Used() => ((_head - _tail) % _blocks + _blocks) % _blocks;

    /// <summary>
    /// Splits a commit whose encoding would not fit in one batch into commits of the same
    /// instance that each do (a caller that makes room between batches commits them one by one).
    /// </summary>
    public IEnumerable<JournalCommit> Split(JournalCommit commit)
    {
        if (JournalFormat.EncodedSize(commit) <= _maxPayload)
        {
            yield return commit;
            yield break;
        }

        var part = new List<JournalRecord>();
        int size = JournalFormat.CommitHeaderBytes;
        foreach (var record in commit.Records)
        {
            int recordSize = JournalFormat.EncodedSize(new JournalCommit(0, [record])) - JournalFormat.CommitHeaderBytes;
            if (part.Count > 0 && size + recordSize > _maxPayload)
            {
                yield return commit with { Records = part };
                part = [];
                size = JournalFormat.CommitHeaderBytes;
            }

            part.Add(record);
            size += recordSize;
        }

        yield return commit with { Records = part };
    }

    public void Dispose() => _gate.Dispose();

    private sealed class Pending(JournalCommit commit)
    {
        public JournalCommit Commit { get; } = commit;

        public TaskCompletionSource<ulong> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
