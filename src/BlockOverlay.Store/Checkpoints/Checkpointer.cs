using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Instances;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Checkpoints;

/// <summary>
/// Checkpoints, and the decision when one is needed: writes every instance's whole map and a
/// superblock naming it, moves the journal's tail, and journals commits, checkpointing when
/// the journal has no room.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> Open, or closed after the clean checkpoint of <see cref="CloseAsync"/> (then it,
/// and the store, take no more work).
/// </para>
/// <para>
/// <b>Invariants.</b> A checkpoint takes the journal head first and the instances after, so
/// commits racing it land after its replay position. It takes the instances at one point of the
/// <see cref="CommitOrder"/> and records that number: replay skips the commits it already holds
/// (their records may be older than its maps) and applies the newer ones over it. It counts as a commit of every
/// instance it took: their pending frees go once it is durable. Until then what it took is
/// marked committed but not durable, so commits of those instances wait for it; if it fails,
/// what it took goes back as records for their next commits, and flushes waiting on it fail.
/// The old checkpoint's blocks are freed only after the new superblock is durable.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> (async) serializes checkpoints and is held across their I/O; it
/// is never taken while holding another lock. A commit that finds the journal full waits for a
/// checkpoint here, which is why the namespace has its own lock.
/// </para>
/// <para>
/// <b>Durability.</b> Checkpoint data is written durably (FUA) before the superblock that names
/// it; the journal is released up to the checkpoint's replay position only after that.
/// </para>
/// </remarks>
internal sealed class Checkpointer(IBlockDevice device, MetadataJournal journal, CommitOrder order, InstanceRegistry instances,
    StoreSpace space, ReadQuarantine quarantine, SuperblockPublisher superblock, StoreCounters counters) : IDisposable
{
    private const int BlockSize = Superblock.Size;
    private const int MakeRoomAttempts = 2;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private bool _closed;

    public void ThrowIfClosed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _closed), typeof(UpperStore));

    /// <summary>
    /// Makes <paramref name="commit"/> durable in the journal, one batch-sized part after another
    /// (a commit may be bigger than the whole journal). When the journal has no room for a part,
    /// a checkpoint moves its tail and the part goes again (its records set ranges: writing one
    /// twice changes nothing); after <see cref="MakeRoomAttempts"/> checkpoints it fails.
    /// </summary>
    public async Task JournalAsync(JournalCommit commit)
    {
        foreach (var part in journal.Split(commit))
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    await journal.CommitAsync(part);
                    break;
                }
                catch (JournalFullException full) when (attempt < MakeRoomAttempts)
                {
                    await MakeRoomAsync(full.TailMoves);
                }
            }
        }
    }

    /// <summary>
    /// Checkpoints unless the journal's tail has moved since it was found full (at
    /// <paramref name="tailMoves"/>): the commits of one full batch all come here, and one
    /// checkpoint makes room for all of them.
    /// </summary>
    private async Task MakeRoomAsync(long tailMoves)
    {
        await _lock.WaitAsync();
        try
        {
            ThrowIfClosed();
            if (journal.TailMoves == tailMoves)
            {
                await CheckpointLockedAsync(clean: false);
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Writes a checkpoint of every instance and moves the journal's replay start forward.
    /// With <paramref name="clean"/> it also marks the store cleanly shut down.
    /// </summary>
    public async Task CheckpointAsync(bool clean = false)
    {
        await _lock.WaitAsync();
        try
        {
            ThrowIfClosed();
            await CheckpointLockedAsync(clean);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>The clean checkpoint; after it the store takes no more work (if it fails, the store stays open).</summary>
    public async Task CloseAsync()
    {
        await _lock.WaitAsync();
        try
        {
            if (!_closed)
            {
                await CheckpointLockedAsync(clean: true);
                Volatile.Write(ref _closed, true);
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task CheckpointLockedAsync(bool clean)
    {
        // The head first, the instances after (see "Invariants").
        var (position, sequence) = journal.Head;
        var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var taken = new List<(StoreInstance Instance, List<(long, long)> Frees)>();
        try
        {
            await WriteCheckpointAsync(position, sequence, taken, durable.Task, clean);
            durable.SetResult();
        }
        catch (Exception e)
        {
            // What it took is marked committed but is not durable: give it back, as records
            // the instances' next commits carry first; flushes waiting on it fail, with a
            // device failure told as one and a bug left a bug.
            foreach (var (instance, frees) in taken)
            {
                instance.CheckpointFailed(frees, durable.Task);
            }

            durable.SetException(e is IOException ? new IOException($"a checkpoint failed: {e.Message}", e) : e);
            throw;
        }
    }

    private async Task WriteCheckpointAsync(long position, ulong sequence, List<(StoreInstance, List<(long, long)>)> taken,
        Task durable, bool clean)
    {
        var saved = new List<CheckpointInstance>();
        ulong commitsThrough = order.TakeForCheckpoint(through =>
        {
            foreach (var instance in instances.All)
            {
                // Null while its delete record is being written: it must not come back from here.
                if (instance.TakeForCheckpoint(durable, through) is { } took)
                {
                    saved.Add(took.Saved);
                    taken.Add((instance, took.Frees));
                }
            }
        });

        var frees = taken.SelectMany(t => t.Item2).ToList();
        byte[] bytes = CheckpointFormat.Encode(sequence, commitsThrough, saved);
        long blocks = Superblock.BlocksFor(bytes.Length);
        var run = space.AllocateForCheckpoint(blocks);
        var current = superblock.Current;
        var old = (current.CheckpointStart, Superblock.BlocksFor(current.CheckpointBytes));
        try
        {
            using (var buffer = new AlignedBuffer((int)(blocks * BlockSize)))
            {
                bytes.CopyTo(buffer.Span);
                await device.WriteAsync(run.Start * BlockSize, buffer.Memory, durable: true);
            }

            counters.Add(WriteReason.Checkpoint, blocks * BlockSize);
            await superblock.PublishAsync(current with
            {
                CheckpointStart = run.Start,
                CheckpointBytes = bytes.Length,
                CheckpointChecksum = Checksums.Of(bytes),
                ReplayPosition = position,
                ReplaySequence = sequence,
                Clean = clean,
                IncompatibleFeatures = Superblock.FeaturesOf(current.IncompatibleFeatures, saved),
            });
        }
        catch (IOException)
        {
            quarantine.Free([run]); // no superblock names this checkpoint: its blocks are free again
            throw;
        }

        journal.Release(position);
        if (old.CheckpointStart != 0)
        {
            frees.Add(old);
        }

        quarantine.Free(frees);
    }

    public void Dispose() => _lock.Dispose();
}
