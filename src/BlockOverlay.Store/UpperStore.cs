using System.Runtime.InteropServices;
using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store;

/// <summary>
/// The upper extent store: one device holding the copy-on-write data of every instance,
/// each allocation owned by the instance whose map names it.
/// </summary>
/// <remarks>
/// Design and implementation (the on-disk format is in docs/FORMAT.md and Format/).
/// <para>
/// <b>Writes are redirected.</b> Data of a write always goes to freshly allocated blocks,
/// written durably (FUA), and only then does the instance's map point at them. So a mapping
/// never names data that is not durable (invariant 3), and a block's content changes only by
/// switching its mapping, which is atomic: after a crash a block reads old or new, never a
/// torn mix.
/// </para>
/// <para>
/// <b>Commit(X)</b> journals exactly X's uncommitted map entries in one commit of X, durably,
/// and nothing of any other instance (several instances' commits may share one journal write).
/// Blocks that a durable mapping still names are freed only after the commit that drops that
/// mapping is durable; blocks never durably mapped are freed at once (invariant 4).
/// </para>
/// <para>
/// <b>Reads</b> hold a ticket while they look up and read upper blocks, and a freed block is
/// quarantined until every read that started before the free has finished: a block a read
/// found in a map cannot be reused (by this instance or another) under it. A read therefore
/// returns this instance's old or new data, never another instance's. (Comparing block
/// numbers after the read would not do: a block can be freed, reused and mapped back.)
/// </para>
/// <para>
/// <b>Checkpoints</b> write every instance's whole map (as of "now") to data blocks, then a new
/// superblock naming it and the journal position to replay from. Commits racing a checkpoint
/// land after that position and are replayed over it; their records set ranges, so replaying
/// one the checkpoint already holds changes nothing. A checkpoint also counts as a commit of
/// every instance: it makes their current maps durable, after which their pending frees go.
/// </para>
/// <para>
/// <b>Failures.</b> A failed data write changes nothing (its blocks go back). A failed commit
/// keeps its records for the next commit of that instance. A checkpoint takes instances'
/// changes before it is durable, so a commit also waits for the checkpoint that took part of
/// its instance; if the checkpoint fails, what it took goes back as records for the next
/// commits, and the flushes waiting on it fail. A create whose record fails after a
/// checkpoint listed the instance has happened (the checkpoint made it durable) and says so;
/// a delete whose record fails keeps the instance and checkpoints it back to durability.
/// </para>
/// <para>
/// <b>Recovery</b> loads the newest valid superblock copy, the checkpoint, replays the journal's
/// valid prefix, and rebuilds free space as everything no map or the checkpoint names; a
/// store block named twice is corruption and refuses to open.
/// </para>
/// <para>
/// <b>Locking.</b> <see cref="_namespaceLock"/> (async) serializes instance creation and deletion;
/// <see cref="_checkpointLock"/> (async) serializes checkpoints. They are separate because a
/// commit that finds the journal full waits for a checkpoint, and a create or delete commits.
/// Each instance's commit lock (async) makes its commits run one at a time (see
/// <see cref="CommitAsync(StoreInstance)"/>); its gate guards its map for in-memory work only; <see cref="_spaceLock"/> guards
/// the allocator; <see cref="_readLock"/> the read tickets and the quarantine of freed blocks.
/// No lock but the two async ones is held across I/O, and no lock is taken inside another
/// (frees take the read lock, release it, then take the space lock).
/// </para>
/// <para>
/// <b>Definitions</b> (flush mode, quota, the unclean mark) change by replacing the instance's
/// definition before the record saying so is written, as a create lists the instance first:
/// a checkpoint that takes the journal head past the record then lists the new definition.
/// The store keeps them; the engine acts on them.
/// </para>
/// <para>
/// <b>Instances and checkpoints.</b> A checkpoint takes the journal head first and lists the
/// instances after, so: a new instance is listed before its create record is written (a
/// checkpoint that misses the record has the instance); a deleted one is unlisted before its
/// delete record is written (a checkpoint that lists it came before the record, which replay
/// then applies), and its blocks are freed only once that record is durable.
/// </para>
/// </remarks>
public sealed class UpperStore : IAsyncDisposable
{
    public const int BlockSize = Superblock.Size;

    private readonly IBlockDevice _device;
    private readonly SemaphoreSlim _namespaceLock = new(1, 1);
    private readonly SemaphoreSlim _checkpointLock = new(1, 1);
    private readonly Lock _spaceLock = new();
    private readonly Lock _readLock = new();
    private readonly SortedSet<long> _readsInFlight = [];
    private readonly Queue<(long Ticket, List<(long Start, long Length)> Runs)> _quarantine = new();
    private long _lastTicket;
    private readonly Dictionary<string, StoreInstance> _instances;
    private readonly BlockAllocator _allocator;
    private readonly MetadataJournal _journal;
    private Superblock _superblock;
    private uint _nextInstanceId;   // guarded by the _instances lock; not in _superblock, which checkpoints replace
    private bool _closed;

    private UpperStore(IBlockDevice device, Superblock superblock, Dictionary<string, StoreInstance> instances,
        BlockAllocator allocator, long journalPosition, ulong journalSequence)
    {
        _device = device;
        _superblock = superblock;
        _nextInstanceId = superblock.NextInstanceId;
        _instances = instances;
        _allocator = allocator;
        // Replayed batches stay in use until a checkpoint folds them in: the tail stays at the
        // superblock's replay position, not where replay ended.
        _journal = new MetadataJournal(device, superblock.StoreId, superblock.JournalStart, superblock.JournalBlocks,
            superblock.ReplayPosition, journalPosition, journalSequence, () => CheckpointAsync(), Counters);
        WasClean = superblock.Clean;
    }

    /// <summary>Whether the store had been shut down cleanly before this open.</summary>
    public bool WasClean { get; }

    /// <summary>Blocks of the data region that are free.</summary>
    public long FreeBlocks
    {
        get
        {
            lock (_spaceLock)
            {
                return _allocator.FreeBlocks;
            }
        }
    }

    /// <summary>The geometry and state of the store, for operators.</summary>
    public StoreInfo Info
    {
        get
        {
            var sb = _superblock;
            return new StoreInfo(sb.StoreId, sb.DeviceBlocks * BlockSize, sb.JournalBlocks * BlockSize, _journal.UsedBlocks * BlockSize,
                (sb.DeviceBlocks - sb.DataStart) * BlockSize, FreeBlocks * BlockSize, sb.CheckpointBytes, Instances.Count,
                Instances.Sum(i => (long)i.ExtentCount));
        }
    }

    /// <summary>Bytes written by reason, since open.</summary>
    public StoreCounters Counters { get; } = new();

    public IReadOnlyList<StoreInstance> Instances
    {
        get
        {
            lock (_instances)
            {
                return [.. _instances.Values.OrderBy(i => i.Definition.Id)];
            }
        }
    }

    /// <summary>Formats a device as an empty store.</summary>
    public static async Task CreateAsync(IBlockDevice device, StoreCreateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new StoreCreateOptions();
        long blocks = device.Size / BlockSize;
        long journal = options.JournalBlocks ?? Math.Clamp(blocks / 64, 64, 16384);
        if (blocks < 2 + journal + 16)
        {
            throw new ArgumentException($"a store needs at least {(2 + journal + 16) * BlockSize} bytes; the device has {device.Size}");
        }

        var superblock = new Superblock
        {
            StoreId = Guid.NewGuid(),
            DeviceBlocks = blocks,
            JournalStart = 2,
            JournalBlocks = journal,
            DataStart = 2 + journal,
            Clean = true,
        };
        // Both copies, so either alone opens the store.
        await WriteSuperblockAsync(device, superblock with { Generation = 0 });
        await WriteSuperblockAsync(device, superblock with { Generation = 1 });
    }

    /// <summary>Opens a store: recovers it to its last durable state and marks it in use.</summary>
    public static async Task<UpperStore> OpenAsync(IBlockDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var superblock = await ReadSuperblockAsync(device);
        if (superblock.RequiresReadOnly)
        {
            throw new StoreFormatException(
                $"the store uses read-only-compatible features 0x{superblock.ReadOnlyCompatibleFeatures:x} this build cannot write");
        }

        var instances = new Dictionary<uint, StoreInstance>();
        if (superblock.CheckpointStart != 0)
        {
            foreach (var saved in await ReadCheckpointAsync(device, superblock))
            {
                var instance = new StoreInstance(saved.Definition);
                foreach (var e in saved.Extents)
                {
                    instance.Map.Set(e.VirtualBlock, e.Length, e.Zero ? ExtentKind.Zero : ExtentKind.Upper, e.StoreBlock, true, []);
                }

                instances[saved.Definition.Id] = instance;
            }
        }

        var (commits, position, sequence) = await MetadataJournal.ReplayAsync(device, superblock);
        uint highestId = instances.Count == 0 ? 0 : instances.Keys.Max();
        foreach (var commit in commits)
        {
            Apply(instances, commit);
            highestId = Math.Max(highestId, commit.InstanceId); // deleted ones too: ids are never reused
        }

        if (!superblock.Clean)
        {
            // A volatile instance's flushes promised nothing: after a crash its content is
            // whatever reached the store, and it says so until an operator sets its mode again.
            foreach (var instance in instances.Values.Where(i => i.Definition.FlushMode == FlushMode.Volatile))
            {
                instance.Definition = instance.Definition with { Unclean = true };
            }
        }

        var allocator = RebuildFreeSpace(superblock, instances.Values);
        uint nextId = Math.Max(superblock.NextInstanceId, highestId + 1);
        var byName = instances.Values.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var store = new UpperStore(device, superblock with { NextInstanceId = nextId }, byName, allocator, position, sequence);
        // In use from now on: a crash before the next clean close is seen as one.
        await store.PublishSuperblockAsync(store._superblock with { Clean = false });
        return store;
    }

    /// <summary>Finds an instance by name.</summary>
    public StoreInstance? Find(string name)
    {
        lock (_instances)
        {
            return _instances.GetValueOrDefault(name);
        }
    }

    /// <summary>Creates an instance; durable when this returns.</summary>
    public async Task<StoreInstance> CreateInstanceAsync(string name, long virtualSize, BaseIdentity? baseImage,
        FlushMode flushMode = FlushMode.Isolated, long quota = 0)
    {
        if (virtualSize <= 0 || virtualSize % BlockSize != 0)
        {
            throw new InstanceException($"instance size {virtualSize} is not a positive multiple of {BlockSize} bytes");
        }

        CheckQuota(quota);

        await _namespaceLock.WaitAsync();
        try
        {
            ThrowIfClosed();
            StoreInstance instance;
            lock (_instances)
            {
                instance = new StoreInstance(new InstanceDefinition(_nextInstanceId, name, virtualSize, baseImage, flushMode, Quota: quota));
                if (!_instances.TryAdd(name, instance))
                {
                    throw new InstanceException($"an instance named '{name}' already exists");
                }

                _nextInstanceId++;
            }

            var definition = instance.Definition;

            try
            {
                await _journal.CommitAsync(new JournalCommit(definition.Id, [new CreateInstanceRecord(definition)]));
            }
            catch (IOException)
            {
                if (await DurableThroughCheckpointAsync(instance))
                {
                    // A checkpoint that listed the instance made it durable even though its record failed.
                    return instance;
                }

                lock (_instances)
                {
                    _instances.Remove(name);
                }

                throw;
            }

            return instance;
        }
        finally
        {
            _namespaceLock.Release();
        }
    }

    /// <summary>
    /// Sets an instance's flush mode, durably, and clears its unclean mark (the operator has
    /// seen it). The definition changes before its record is written, as a create lists the
    /// instance first: a checkpoint that takes the journal head past the record must list the
    /// new mode, or the change would be lost.
    /// </summary>
    public Task SetFlushModeAsync(string name, FlushMode mode) =>
        ChangeDefinitionAsync(name, d => d with { FlushMode = mode, Unclean = false }, new SetFlushModeRecord(mode));

    /// <summary>
    /// Sets an instance's quota (bytes of upper data; 0 for none), durably. Data it already holds
    /// past a lower quota stays; only new blocks are refused.
    /// </summary>
    public Task SetQuotaAsync(string name, long quota)
    {
        CheckQuota(quota);
        return ChangeDefinitionAsync(name, d => d with { Quota = quota }, new SetQuotaRecord(quota));
    }

    /// <summary>Changes an instance's definition and journals the record that says so (see SetFlushModeAsync).</summary>
    private async Task ChangeDefinitionAsync(string name, Func<InstanceDefinition, InstanceDefinition> change, JournalRecord record)
    {
        await _namespaceLock.WaitAsync();
        try
        {
            ThrowIfClosed();
            var instance = Find(name) ?? throw new InstanceException($"no instance named '{name}'");
            var before = instance.Definition;
            instance.Definition = change(before);
            try
            {
                await _journal.CommitAsync(new JournalCommit(before.Id, [record]));
            }
            catch (IOException)
            {
                // Not durable (unless a checkpoint took the new definition: then it has happened,
                // and the next checkpoint keeps it either way). Say it failed and keep the old one.
                instance.Definition = before;
                throw;
            }
        }
        finally
        {
            _namespaceLock.Release();
        }
    }

    private static void CheckQuota(long quota)
    {
        if (quota < 0 || quota % BlockSize != 0)
        {
            throw new InstanceException($"quota {quota} is not a multiple of {BlockSize} bytes (0 for none)");
        }
    }

    /// <summary>
    /// Deletes an instance: durable when this returns, and its blocks are free for reuse
    /// from then on (never before the delete record is durable).
    /// </summary>
    public async Task DeleteInstanceAsync(string name)
    {
        await _namespaceLock.WaitAsync();
        try
        {
            ThrowIfClosed();
            var instance = Find(name) ?? throw new InstanceException($"no instance named '{name}'");
            lock (instance.Gate)
            {
                instance.Deleted = true; // from now on checkpoints leave it out (see "Instances and checkpoints")
            }

            try
            {
                await _journal.CommitAsync(new JournalCommit(instance.Definition.Id, [new DeleteInstanceRecord()]));
            }
            catch (IOException)
            {
                lock (instance.Gate)
                {
                    instance.Deleted = false;
                }

                // A checkpoint may have left it out meanwhile: make it durable again before
                // saying the delete failed (if this fails too, the error says so).
                await CheckpointAsync();
                throw;
            }

            var removed = new List<MappedExtent>();
            List<(long, long)> pending;
            lock (instance.Gate)
            {
                instance.Map.Clear(removed);
                (pending, instance.FreeAfterCommit) = (instance.FreeAfterCommit, []);
            }

            lock (_instances)
            {
                _instances.Remove(name);
            }

            Free(removed.Where(e => e.Kind == ExtentKind.Upper).Select(e => (e.StoreBlock, e.Length)).Concat(pending));
        }
        finally
        {
            _namespaceLock.Release();
        }
    }

    /// <summary>
    /// Writes whole blocks of an instance: to new store blocks, durably, then maps them.
    /// Not yet committed: a crash before <see cref="CommitAsync(StoreInstance)"/> may undo it.
    /// </summary>
    public ValueTask WriteAsync(StoreInstance instance, long virtualBlock, ReadOnlyMemory<byte> data, WriteReason reason = WriteReason.Flush) =>
        WriteBlocksAsync(instance, [(virtualBlock, data.Length / BlockSize)], data, reason, reserved: 0);

    /// <summary>
    /// Writes runs of an instance's virtual blocks, in the order given and not necessarily
    /// adjacent, from consecutive blocks of <paramref name="data"/>: they land in freshly
    /// allocated store blocks that are as contiguous as free space allows, so scattered
    /// virtual blocks still go to the device in few large writes. Durable, then mapped;
    /// not yet committed. Data in an <see cref="AlignedBuffer"/> is written without a copy.
    /// <paramref name="reserved"/> of the blocks were reserved (<see cref="StoreInstance.TryReserve"/>):
    /// when they are mapped, in the same step, their reservations become upper blocks. If it fails, nothing is mapped
    /// and the reservations stay.
    /// </summary>
    public async ValueTask WriteBlocksAsync(StoreInstance instance, IReadOnlyList<(long VirtualBlock, long Length)> runs,
        ReadOnlyMemory<byte> data, WriteReason reason, long reserved)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(runs);
        ArgumentOutOfRangeException.ThrowIfNegative(reserved);
        if (reason is not (WriteReason.Flush or WriteReason.Background))
        {
            throw new ArgumentException($"instance data is written for a flush or in the background, not for {reason}", nameof(reason));
        }

        long count = 0;
        foreach (var (virtualBlock, length) in runs)
        {
            count += CheckRange(instance, virtualBlock, length * BlockSize);
        }

        if (count * BlockSize != data.Length)
        {
            throw new ArgumentException($"{data.Length} bytes of data for {count} blocks");
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThan(reserved, count);

        var placed = Allocate(count);
        try
        {
            await WritePlacedAsync(placed, data);
        }
        catch
        {
            Free(placed);
            throw;
        }

        Counters.Add(reason, data.Length);
        var replaced = new List<MappedExtent>();
        var freeNow = new List<(long, long)>();
        bool deleted;
        lock (instance.Gate)
        {
            // Read once, here: a delete that starts after the mapping (and may still fail) must
            // not make this mapped write report a failure.
            deleted = instance.Deleted;
            if (deleted)
            {
                freeNow.AddRange(placed);
            }
            else
            {
                foreach (var (virtualBlock, storeBlock, length) in Pair(runs, placed))
                {
                    instance.Map.Set(virtualBlock, length, ExtentKind.Upper, storeBlock, committed: false, replaced);
                }

                instance.ReservedBlocks -= reserved;

                SortReplaced(instance, replaced, freeNow);
            }
        }

        Free(freeNow);
        if (deleted)
        {
            throw new InstanceException($"instance '{instance.Name}' was deleted");
        }
    }

    /// <summary>Writes consecutive data to the allocated runs, one durable device write per run.</summary>
    private async ValueTask WritePlacedAsync(List<(long Start, long Length)> placed, ReadOnlyMemory<byte> data)
    {
        AlignedBuffer? copy = null;
        try
        {
            if (!MemoryMarshal.TryGetMemoryManager(data, out AlignedBuffer? _, out int start, out _) || start % BlockSize != 0)
            {
                copy = new AlignedBuffer(data.Length);
                data.CopyTo(copy.Memory);
                data = copy.Memory;
            }

            long done = 0;
            foreach (var (storeStart, length) in placed)
            {
                await _device.WriteAsync(storeStart * BlockSize, data.Slice((int)(done * BlockSize), (int)(length * BlockSize)), durable: true);
                done += length;
            }
        }
        finally
        {
            ((IDisposable?)copy)?.Dispose();
        }
    }

    /// <summary>Lines virtual runs up against store runs: pieces that are contiguous on both sides.</summary>
    private static IEnumerable<(long VirtualBlock, long StoreBlock, long Length)> Pair(
        IReadOnlyList<(long VirtualBlock, long Length)> virtualRuns, List<(long Start, long Length)> storeRuns)
    {
        int s = 0;
        long storeUsed = 0;
        foreach (var (virtualBlock, length) in virtualRuns)
        {
            long done = 0;
            while (done < length)
            {
                long piece = Math.Min(length - done, storeRuns[s].Length - storeUsed);
                yield return (virtualBlock + done, storeRuns[s].Start + storeUsed, piece);
                done += piece;
                storeUsed += piece;
                if (storeUsed == storeRuns[s].Length)
                {
                    s++;
                    storeUsed = 0;
                }
            }
        }
    }

    /// <summary>Makes whole blocks read as zeros, releasing their upper blocks (not yet committed).</summary>
    public void Zero(StoreInstance instance, long virtualBlock, long count)
    {
        ArgumentNullException.ThrowIfNull(instance);
        CheckRange(instance, virtualBlock, count * BlockSize);
        var replaced = new List<MappedExtent>();
        var freeNow = new List<(long, long)>();
        lock (instance.Gate)
        {
            instance.Map.Set(virtualBlock, count, ExtentKind.Zero, 0, committed: false, replaced);
            SortReplaced(instance, replaced, freeNow);
        }

        Free(freeNow);
    }

    /// <summary>
    /// Reads whole blocks of an instance. Fills the parts held in the store and describes the
    /// range in <paramref name="layout"/>: the caller fills Base parts from the base image and
    /// Zero parts with zeros.
    /// </summary>
    public async ValueTask ReadAsync(StoreInstance instance, long virtualBlock, Memory<byte> destination, List<MappedExtent> layout)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(layout);
        long count = CheckRange(instance, virtualBlock, destination.Length);
        long ticket = BeginRead();
        try
        {
            layout.Clear();
            Lookup(instance, virtualBlock, count, layout);
            foreach (var extent in layout.Where(e => e.Kind == ExtentKind.Upper))
            {
                using var buffer = new AlignedBuffer((int)(extent.Length * BlockSize));
                await _device.ReadAsync(extent.StoreBlock * BlockSize, buffer.Memory);
                buffer.Memory.CopyTo(destination[(int)((extent.VirtualBlock - virtualBlock) * BlockSize)..]);
            }
        }
        finally
        {
            EndRead(ticket);
        }
    }

    /// <summary>Describes a range of an instance without reading it (block status).</summary>
    public void Lookup(StoreInstance instance, long virtualBlock, long count, List<MappedExtent> layout)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ThrowIfClosed();
        lock (instance.Gate)
        {
            instance.Map.Lookup(virtualBlock, count, layout);
        }
    }

    /// <summary>
    /// Makes every write and zeroing of this instance done so far durable, in one commit of
    /// this instance only. Cheap when there is nothing to commit.
    /// </summary>
    /// <returns>The bytes this instance's commit took in the journal (its share of a shared batch).</returns>
    /// <remarks>
    /// Commits of one instance run one after another (<see cref="StoreInstance.CommitLock"/>):
    /// a commit marks what it takes as committed before its journal write is durable, so a
    /// second commit running beside it would find nothing to do and report durable what is
    /// still in flight; and a failed commit's records must be carried again before any newer
    /// record of the same blocks, or replay would map an old block over a newer one.
    /// Different instances still share journal batches.
    /// </remarks>
    public async Task<long> CommitAsync(StoreInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        await instance.CommitLock.WaitAsync();
        try
        {
            return await CommitOneAsync(instance);
        }
        finally
        {
            instance.CommitLock.Release();
        }
    }

    private async Task<long> CommitOneAsync(StoreInstance instance)
    {
        var uncommitted = new List<MappedExtent>();
        List<JournalRecord> records;
        List<(long, long)> frees;
        Task checkpoint;
        lock (instance.Gate)
        {
            instance.Map.CollectUncommitted(uncommitted);
            instance.Map.MarkAllCommitted();
            records = [.. instance.RetryRecords, .. uncommitted.Select(ToRecord)];
            instance.RetryRecords = [];
            (frees, instance.FreeAfterCommit) = (instance.FreeAfterCommit, []);
            checkpoint = instance.CheckpointDurable;
        }

        if (records.Count == 0)
        {
            // Everything this instance changed is durable, or taken by a checkpoint still
            // being written: its completion is what makes it durable.
            await AwaitCheckpointAsync(instance, checkpoint, frees);
            Free(frees);
            return 0;
        }

        var commit = new JournalCommit(instance.Definition.Id, records);
        try
        {
            await _journal.CommitAsync(commit);
        }
        catch
        {
            lock (instance.Gate)
            {
                // Carry them again next time, before anything newer.
                instance.RetryRecords = [.. records, .. instance.RetryRecords];
                instance.FreeAfterCommit.AddRange(frees);
            }

            throw;
        }

        // Changes a checkpoint took before this commit are durable only with that checkpoint.
        await AwaitCheckpointAsync(instance, checkpoint, frees);
        Free(frees);
        return JournalFormat.EncodedSize(commit);
    }

    /// <summary>
    /// How full the journal is (0..1). A full journal makes the commit that finds it full pay
    /// for a checkpoint of every instance, so callers checkpoint in the background well before.
    /// </summary>
    public double JournalFill => (double)_journal.UsedBlocks / _superblock.JournalBlocks;

    /// <summary>Waits for a checkpoint a commit depends on; if it failed, the commit's frees wait for the next commit.</summary>
    private static async Task AwaitCheckpointAsync(StoreInstance instance, Task checkpoint, List<(long, long)> frees)
    {
        try
        {
            await checkpoint;
        }
        catch (IOException)
        {
            lock (instance.Gate)
            {
                instance.FreeAfterCommit.AddRange(frees);
            }

            throw;
        }
    }

    /// <summary>
    /// Writes a checkpoint of every instance and moves the journal's replay start forward.
    /// With <paramref name="clean"/> it also marks the store cleanly shut down.
    /// </summary>
    public async Task CheckpointAsync(bool clean = false)
    {
        await _checkpointLock.WaitAsync();
        try
        {
            ThrowIfClosed();
            // The head first, the instances after (see "Instances and checkpoints").
            var (position, sequence) = _journal.Head;
            var saved = new List<CheckpointInstance>();
            var frees = new List<(long, long)>();
            var durable = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var taken = new List<(StoreInstance Instance, List<(long, long)> Frees)>();
            try
            {
                await WriteCheckpointAsync(position, sequence, saved, taken, frees, durable, clean);
                durable.SetResult();
            }
            catch (Exception e) when (e is IOException or StoreFullException)
            {
                // What it took is marked committed but is not durable: give it back, as records
                // the instances' next commits carry first; flushes waiting on it fail.
                GiveBack(taken, durable.Task);
                durable.SetException(new IOException($"a checkpoint failed: {e.Message}", e));
                throw;
            }
        }
        finally
        {
            _checkpointLock.Release();
        }
    }

    private async Task WriteCheckpointAsync(long position, ulong sequence, List<CheckpointInstance> saved,
        List<(StoreInstance, List<(long, long)>)> taken, List<(long, long)> frees, TaskCompletionSource durable, bool clean)
    {
        foreach (var instance in Instances)
        {
            lock (instance.Gate)
            {
                if (instance.Deleted)
                {
                    continue; // its delete record is being written: it must not come back from here
                }

                instance.CheckpointDurable = durable.Task;
                var extents = instance.Map.Extents
                    .Select(e => new CheckpointExtent(e.VirtualBlock, e.Length, e.Kind == ExtentKind.Zero, e.StoreBlock)).ToList();
                saved.Add(new CheckpointInstance(instance.Definition, extents));
                instance.Map.MarkAllCommitted();
                instance.RetryRecords = [];
                taken.Add((instance, instance.FreeAfterCommit));
                instance.FreeAfterCommit = [];
            }
        }

        frees.AddRange(taken.SelectMany(t => t.Item2));

        byte[] bytes = CheckpointFormat.Encode(sequence, saved);
        long blocks = Superblock.BlocksFor(bytes.Length);
        var runs = AllocateForCheckpoint(blocks);
        var old = (_superblock.CheckpointStart, Superblock.BlocksFor(_superblock.CheckpointBytes));
        try
        {
            using (var buffer = new AlignedBuffer((int)(blocks * BlockSize)))
            {
                bytes.CopyTo(buffer.Span);
                await _device.WriteAsync(runs.Start * BlockSize, buffer.Memory, durable: true);
            }

            Counters.Add(WriteReason.Checkpoint, blocks * BlockSize);
            await PublishSuperblockAsync(_superblock with
            {
                CheckpointStart = runs.Start,
                CheckpointBytes = bytes.Length,
                CheckpointChecksum = Checksums.Of(bytes),
                ReplayPosition = position,
                ReplaySequence = sequence,
                Clean = clean,
            });
        }
        catch (IOException)
        {
            Free([runs]); // no superblock names this checkpoint: its blocks are free again
            throw;
        }

        _journal.Release(position);
        if (old.CheckpointStart != 0)
        {
            frees.Add(old);
        }

        Free(frees);
    }

    /// <summary>Whether a checkpoint that listed the instance has become durable.</summary>
    private static async Task<bool> DurableThroughCheckpointAsync(StoreInstance instance)
    {
        Task checkpoint;
        lock (instance.Gate)
        {
            checkpoint = instance.CheckpointDurable;
        }

        try
        {
            await checkpoint;
            return !ReferenceEquals(checkpoint, Task.CompletedTask);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>
    /// After a failed checkpoint: each instance's next commit carries its whole map, as it is
    /// now. Not as the checkpoint took it: commits journaled since may hold newer state, and
    /// replaying the older snapshot after them would undo it. The current map supersedes
    /// everything earlier, including older retry records.
    /// </summary>
    private static void GiveBack(List<(StoreInstance Instance, List<(long, long)> Frees)> taken, Task failed)
    {
        foreach (var (instance, pendingFrees) in taken)
        {
            lock (instance.Gate)
            {
                instance.RetryRecords = [.. instance.Map.Extents.Select(ToRecord)];
                instance.FreeAfterCommit.AddRange(pendingFrees);
                if (ReferenceEquals(instance.CheckpointDurable, failed))
                {
                    instance.CheckpointDurable = Task.CompletedTask; // commits now carry what it took
                }
            }
        }
    }

    /// <summary>Checkpoints, marks the store cleanly shut down, and stops accepting work.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_closed)
        {
            await CheckpointAsync(clean: true);
            _closed = true;
        }

        _journal.Dispose();
        _namespaceLock.Dispose();
        _checkpointLock.Dispose();
    }

    private static JournalRecord ToRecord(MappedExtent e) => e.Kind == ExtentKind.Upper
        ? new MapRecord(e.VirtualBlock, e.StoreBlock, e.Length)
        : new ZeroRecord(e.VirtualBlock, e.Length);

    /// <summary>Replaced upper blocks: those a durable mapping may name wait for the next commit; the rest go now.</summary>
    private static void SortReplaced(StoreInstance instance, List<MappedExtent> replaced, List<(long, long)> freeNow)
    {
        foreach (var e in replaced.Where(e => e.Kind == ExtentKind.Upper))
        {
            (e.Committed ? instance.FreeAfterCommit : freeNow).Add((e.StoreBlock, e.Length));
        }
    }

    private static long CheckRange(StoreInstance instance, long virtualBlock, long bytes)
    {
        if (bytes <= 0 || bytes % BlockSize != 0)
        {
            throw new ArgumentException($"{bytes} bytes is not a positive whole number of {BlockSize}-byte blocks");
        }

        long count = bytes / BlockSize;
        return virtualBlock < 0 || virtualBlock > instance.Blocks - count
            ? throw new ArgumentOutOfRangeException(nameof(virtualBlock), $"blocks {virtualBlock}+{count} are outside instance '{instance.Name}' ({instance.Blocks} blocks)")
            : count;
    }

    private List<(long Start, long Length)> Allocate(long count)
    {
        var runs = new List<(long, long)>();
        lock (_spaceLock)
        {
            // Keep room for the next checkpoint, or the store could never be closed again.
            if (_allocator.FreeBlocks - count < CheckpointReserveBlocks() || !_allocator.TryAllocate(count, runs))
            {
                throw new StoreFullException($"the store is full: {count} blocks wanted, {_allocator.FreeBlocks} free");
            }
        }

        return runs;
    }

    private (long Start, long Length) AllocateForCheckpoint(long blocks)
    {
        var runs = new List<(long Start, long Length)>();
        lock (_spaceLock)
        {
            // A checkpoint is read back in one piece, so it needs one contiguous run.
            if (!_allocator.TryAllocate(blocks, runs) || runs.Count != 1)
            {
                runs.ForEach(r => _allocator.Free(r.Start, r.Length));
                throw new StoreFullException($"no contiguous room for a checkpoint of {blocks} blocks");
            }
        }

        return runs[0];
    }

    /// <summary>Blocks the next checkpoint may need: the maps' size, twice over, plus slack.</summary>
    /// <remarks>
    /// Called under the space lock, so it reads each map's extent count without that map's
    /// gate (taking it here would invert the lock order): a count a few writes stale is fine
    /// for an estimate that has slack in it, and reading an int cannot tear.
    /// </remarks>
    private long CheckpointReserveBlocks()
    {
        long extents = 0;
        lock (_instances)
        {
            foreach (var instance in _instances.Values)
            {
                extents += instance.Map.ExtentCount + 4;
            }
        }

        return (2 * Superblock.BlocksFor(CheckpointFormat.HeaderBytes + (extents * 48))) + 16;
    }

    /// <summary>
    /// Frees blocks, through the quarantine: while reads that started before now are still in
    /// flight (any of them may have found these blocks in a map), the blocks wait.
    /// </summary>
    private void Free(IEnumerable<(long Start, long Length)> runs)
    {
        var list = runs.ToList();
        if (list.Count == 0)
        {
            return;
        }

        lock (_readLock)
        {
            if (_readsInFlight.Count > 0)
            {
                _quarantine.Enqueue((_lastTicket, list));
                return;
            }
        }

        FreeNow(list);
    }

    private void FreeNow(List<(long Start, long Length)> runs)
    {
        lock (_spaceLock)
        {
            foreach (var (start, length) in runs)
            {
                _allocator.Free(start, length);
            }
        }
    }

    private long BeginRead()
    {
        lock (_readLock)
        {
            long ticket = ++_lastTicket;
            _readsInFlight.Add(ticket);
            return ticket;
        }
    }

    /// <summary>Ends a read; blocks freed before every read still in flight started are released.</summary>
    private void EndRead(long ticket)
    {
        List<(long, long)>? released = null;
        lock (_readLock)
        {
            _readsInFlight.Remove(ticket);
            long oldest = _readsInFlight.Count == 0 ? long.MaxValue : _readsInFlight.Min;
            while (_quarantine.TryPeek(out var held) && held.Ticket < oldest)
            {
                (released ??= []).AddRange(_quarantine.Dequeue().Runs);
            }
        }

        if (released is not null)
        {
            FreeNow(released);
        }
    }

    private async Task PublishSuperblockAsync(Superblock next)
    {
        lock (_instances)
        {
            next = next with { Generation = _superblock.Generation + 1, NextInstanceId = _nextInstanceId };
        }

        await WriteSuperblockAsync(_device, next);
        Counters.Add(WriteReason.Checkpoint, BlockSize);
        _superblock = next;
    }

    private static async Task WriteSuperblockAsync(IBlockDevice device, Superblock superblock)
    {
        using var buffer = new AlignedBuffer(BlockSize);
        superblock.Encode(buffer.Span);
        await device.WriteAsync(superblock.CopyBlock * BlockSize, buffer.Memory, durable: true);
    }

    /// <summary>The newer valid copy; if neither is valid, an error naming both problems.</summary>
    private static async Task<Superblock> ReadSuperblockAsync(IBlockDevice device)
    {
        long deviceBlocks = device.Size / BlockSize;
        var copies = new List<Superblock>();
        var problems = new List<string>();
        using var buffer = new AlignedBuffer(BlockSize);
        for (int copy = 0; copy < 2; copy++)
        {
            await device.ReadAsync(copy * BlockSize, buffer.Memory);
            try
            {
                copies.Add(Superblock.Decode(buffer.Span, $"superblock copy {(copy == 0 ? 'A' : 'B')} (block {copy})", deviceBlocks));
            }
            catch (StoreFormatException e)
            {
                problems.Add(e.Message);
            }
        }

        return copies.Count > 0
            ? copies.MaxBy(c => c.Generation)!
            : throw new StoreFormatException($"cannot open the store: {string.Join("; ", problems)}");
    }

    private static async Task<List<CheckpointInstance>> ReadCheckpointAsync(IBlockDevice device, Superblock superblock)
    {
        long blocks = Superblock.BlocksFor(superblock.CheckpointBytes);
        using var buffer = new AlignedBuffer((int)(blocks * BlockSize));
        await device.ReadAsync(superblock.CheckpointStart * BlockSize, buffer.Memory);
        var bytes = buffer.Span[..(int)superblock.CheckpointBytes];
        string where = $"checkpoint at block {superblock.CheckpointStart} ({superblock.CheckpointBytes} bytes)";
        if (Checksums.Of(bytes) != superblock.CheckpointChecksum)
        {
            throw new StoreFormatException($"{where}: does not match the checksum the superblock records (corrupt)");
        }

        var (sequence, instances) = CheckpointFormat.Decode(bytes, where);
        return sequence != superblock.ReplaySequence
            ? throw new StoreFormatException($"{where}: made for journal sequence {sequence}, the superblock replays from {superblock.ReplaySequence}")
            : instances;
    }

    /// <summary>Applies one replayed commit. Records of instances deleted later are skipped.</summary>
    private static void Apply(Dictionary<uint, StoreInstance> instances, JournalCommit commit)
    {
        foreach (var record in commit.Records)
        {
            switch (record)
            {
                case CreateInstanceRecord create:
                    // A create whose record failed may still be durable through a checkpoint; a later
                    // acknowledged create of the same name is the one that counts.
                    foreach (var stale in instances.Values.Where(i => i.Name == create.Definition.Name && i.Definition.Id != create.Definition.Id).ToList())
                    {
                        instances.Remove(stale.Definition.Id);
                    }

                    instances.TryAdd(create.Definition.Id, new StoreInstance(create.Definition));
                    break;
                case DeleteInstanceRecord:
                    instances.Remove(commit.InstanceId);
                    break;
                case MapRecord map when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Map.Set(map.VirtualBlock, map.Length, ExtentKind.Upper, map.StoreBlock, true, []);
                    break;
                case SetFlushModeRecord mode when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Definition = instance.Definition with { FlushMode = mode.FlushMode, Unclean = false };
                    break;
                case SetQuotaRecord quota when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Definition = instance.Definition with { Quota = quota.Quota };
                    break;
                case ZeroRecord zero when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Map.Set(zero.VirtualBlock, zero.Length, ExtentKind.Zero, 0, true, []);
                    break;
            }
        }
    }

    /// <summary>Free space is everything in the data region that no map and no checkpoint names.</summary>
    private static BlockAllocator RebuildFreeSpace(Superblock superblock, IEnumerable<StoreInstance> instances)
    {
        var allocator = new BlockAllocator(superblock.DataStart, superblock.DeviceBlocks - superblock.DataStart);
        if (superblock.CheckpointStart != 0)
        {
            allocator.MarkAllocated(superblock.CheckpointStart, Superblock.BlocksFor(superblock.CheckpointBytes));
        }

        foreach (var instance in instances)
        {
            foreach (var extent in instance.Map.Extents.Where(e => e.Kind == ExtentKind.Upper))
            {
                try
                {
                    allocator.MarkAllocated(extent.StoreBlock, extent.Length);
                }
                catch (InvalidOperationException)
                {
                    throw new StoreFormatException(
                        $"store blocks {extent.StoreBlock}+{extent.Length} of instance '{instance.Name}' are outside the data region " +
                        "or already named by another mapping: the metadata is corrupt");
                }
            }
        }

        return allocator;
    }

    private void ThrowIfClosed() => ObjectDisposedException.ThrowIf(_closed, this);
}

/// <summary>What a store looks like, in bytes unless said otherwise.</summary>
public sealed record StoreInfo(Guid StoreId, long DeviceBytes, long JournalBytes, long JournalUsedBytes, long DataBytes,
    long FreeBytes, long CheckpointBytes, int Instances, long Extents);

/// <summary>Options of a new store.</summary>
public sealed record StoreCreateOptions
{
    /// <summary>Journal size in blocks; default: 1/64 of the device, between 64 blocks (256 KiB) and 16384 (64 MiB).</summary>
    public long? JournalBlocks { get; init; }
}
