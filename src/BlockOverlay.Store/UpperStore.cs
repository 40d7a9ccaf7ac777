using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Commits;
using BlockOverlay.Store.Data;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Instances;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Recovery;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store;

/// <summary>
/// The upper extent store: one device holding the copy-on-write data of every instance,
/// each allocation owned by the instance whose map names it. This is the face the Engine
/// uses; each job lives in its own room, named below.
/// </summary>
/// <remarks>
/// The on-disk format is in docs/FORMAT.md and Format/. The rooms, each with its design
/// (states, invariants, locking, durability) at its top:
/// <list type="bullet">
/// <item><see cref="StoreRecovery"/>: opening: superblock, checkpoint, journal replay, free space.</item>
/// <item><see cref="InstanceNamespace"/> over <see cref="InstanceRegistry"/>: create, redefine, delete;
/// <see cref="InstanceCloner"/>: clone.</item>
/// <item><see cref="DataPath"/>: redirected writes, zeroing, reads, look-ups.</item>
/// <item><see cref="InstanceCommitter"/>: Commit(X), X's records only, numbered in the
/// <see cref="CommitOrder"/> that tells replay which commits a checkpoint already holds.</item>
/// <item><see cref="Checkpointer"/> with <see cref="SuperblockPublisher"/>: checkpoints, and when
/// the journal (<see cref="MetadataJournal"/>) is full, the checkpoint that makes room.</item>
/// <item><see cref="StoreSpace"/> and <see cref="ReadQuarantine"/>: allocation, and frees held back
/// from reads that may still use the blocks.</item>
/// <item><see cref="StoreInstance"/>: one instance's map (read from its checkpoint segment when
/// first needed: <see cref="LoadAsync"/>) and what its next commit carries.</item>
/// </list>
/// <para>
/// <b>Lock order.</b> Namespace lock, then checkpoint lock (both async, held across I/O); an
/// instance's commit lock, then the checkpoint lock. The memory locks (an instance's gate, the
/// registry's, the quarantine's, the space's) are held for memory work only and none is taken
/// inside another, except the registry's inside the space's. A map's first load
/// (<see cref="LoadAsync"/>) reads outside every lock and takes only the instance's gate, to
/// install it; so it may run under any async lock (a delete loads under the namespace lock).
/// </para>
/// <para>
/// <b>Definitions</b> (flush mode, quota, the unclean mark) are kept here; the engine acts on them.
/// </para>
/// </remarks>
public sealed class UpperStore : IAsyncDisposable
{
    public const int BlockSize = Superblock.Size;

    private readonly IBlockDevice _device;
    private readonly MetadataJournal _journal;
    private readonly InstanceRegistry _instances;
    private readonly StoreSpace _space;
    private readonly SuperblockPublisher _superblock;
    private readonly CommitOrder _order;
    private readonly Checkpointer _checkpointer;
    private readonly InstanceNamespace _namespace;
    private readonly InstanceCommitter _committer;
    private readonly DataPath _data;
    private readonly InstanceCloner _cloner;

    private UpperStore(IBlockDevice device, RecoveredStore recovered)
    {
        var sb = recovered.Superblock;
        _device = device;
        WasClean = sb.Clean;
        _instances = new InstanceRegistry(recovered.Instances, sb.NextInstanceId);
        _space = new StoreSpace(recovered.Allocator, _instances);
        var quarantine = new ReadQuarantine(_space.Free);
        // Replayed batches stay in use until a checkpoint folds them in: the tail stays at the
        // superblock's replay position, not where replay ended.
        _journal = new MetadataJournal(device, sb.StoreId, sb.JournalStart, sb.JournalBlocks, sb.ReplayPosition,
            recovered.JournalHead, recovered.JournalSequence, Counters);
        _superblock = new SuperblockPublisher(device, sb, _instances, Counters);
        _order = new CommitOrder(recovered.LastCommitNumber);
        _checkpointer = new Checkpointer(device, _journal, _order, _instances, _space, quarantine, _superblock, Counters, recovered.Checkpoint);
        _namespace = new InstanceNamespace(device, _instances, _checkpointer, quarantine);
        _committer = new InstanceCommitter(_order, _checkpointer, quarantine);
        _data = new DataPath(device, _space, quarantine, _checkpointer, Counters);
        _cloner = new InstanceCloner(device, _instances, _namespace, _data);
    }

    /// <summary>Whether the store had been shut down cleanly before this open.</summary>
    public bool WasClean { get; }

    /// <summary>Blocks of the data region that are free.</summary>
    public long FreeBlocks => _space.FreeBlocks;

    /// <summary>The geometry and state of the store, for operators.</summary>
    public StoreInfo Info
    {
        get
        {
            var sb = _superblock.Current;
            var instances = Instances;
            return new StoreInfo(sb.StoreId, sb.DeviceBlocks * BlockSize, sb.JournalBlocks * BlockSize, _journal.UsedBlocks * BlockSize,
                (sb.DeviceBlocks - sb.DataStart) * BlockSize, FreeBlocks * BlockSize, sb.CheckpointBytes + _checkpointer.Index.Bytes, instances.Count,
                instances.Sum(i => (long)i.ExtentCount));
        }
    }

    /// <summary>Every run of blocks the current checkpoint uses (its root and its parts), for tests that count free space.</summary>
    internal IEnumerable<(long Start, long Length)> CheckpointRuns
    {
        get
        {
            var sb = _superblock.Current;
            var runs = _checkpointer.Index.Runs().Select(r => (r.Start, r.Length));
            return sb.CheckpointStart == 0 ? runs : runs.Append((sb.CheckpointStart, Superblock.BlocksFor(sb.CheckpointBytes)));
        }
    }

    /// <summary>Bytes written by reason, since open.</summary>
    public StoreCounters Counters { get; } = new();

    public IReadOnlyList<StoreInstance> Instances => _instances.All;

    /// <summary>
    /// How full the journal is (0..1). A full journal makes the commit that finds it full pay
    /// for a checkpoint of every instance, so callers checkpoint in the background well before.
    /// </summary>
    public double JournalFill => (double)_journal.UsedBlocks / _superblock.Current.JournalBlocks;

    /// <summary>Formats a device as an empty store; a device too small for one is a <see cref="StoreFormatException"/>.</summary>
    public static async Task CreateAsync(IBlockDevice device, StoreCreateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new StoreCreateOptions();
        long blocks = device.Size / BlockSize;
        long journal = options.JournalBlocks ?? StoreCreateOptions.DefaultJournalBlocks(blocks);
        if (blocks < 2 + journal + 16)
        {
            throw new StoreFormatException($"a store needs at least {(2 + journal + 16) * BlockSize} bytes; the device has {device.Size}");
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
        await SuperblockPublisher.WriteAsync(device, superblock with { Generation = 0 });
        await SuperblockPublisher.WriteAsync(device, superblock with { Generation = 1 });
    }

    /// <summary>Opens a store: recovers it to its last durable state and marks it in use.</summary>
    public static async Task<UpperStore> OpenAsync(IBlockDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var store = new UpperStore(device, await StoreRecovery.RecoverAsync(device));
        // In use from now on: a crash before the next clean close is seen as one.
        await store._superblock.PublishAsync(store._superblock.Current with { Clean = false });
        return store;
    }

    /// <summary>
    /// Finds an instance by name. Its definition and counts are there at once; its map may still
    /// be only on disk (see <see cref="LoadAsync"/>).
    /// </summary>
    public StoreInstance? Find(string name) => _instances.Find(name);

    /// <summary>
    /// Reads an instance's map from the checkpoint if it is not in memory yet: an open store reads
    /// no map until an instance is first used. <see cref="Lookup"/>, <see cref="Zero"/> and
    /// <see cref="StoreInstance.TryReserve"/> need it loaded (a server loads it when it attaches
    /// the instance); writes, reads, clones and deletes load it themselves; a commit of an
    /// instance never loaded has nothing to commit. Cheap once loaded; safe to call concurrently.
    /// </summary>
    public Task LoadAsync(StoreInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        return instance.IsLoaded ? Task.CompletedTask : instance.LoadAsync(_device);
    }

    /// <summary>Creates an instance; durable when this returns.</summary>
    public Task<StoreInstance> CreateInstanceAsync(string name, long virtualSize, BaseIdentity? baseImage,
        FlushMode flushMode = FlushMode.Isolated, long quota = 0, InstanceAccess? access = null, InstanceQos? qos = null) =>
        _namespace.CreateAsync(name, virtualSize, baseImage, flushMode, quota, access ?? InstanceAccess.Open, qos ?? InstanceQos.Default);

    /// <summary>
    /// Sets an instance's flush mode, durably, and clears its unclean mark (the operator has
    /// seen it).
    /// </summary>
    public Task SetFlushModeAsync(string name, FlushMode mode) =>
        _namespace.RedefineAsync(name, d => d with { FlushMode = mode, Unclean = false }, new SetFlushModeRecord(mode));

    /// <summary>
    /// Sets an instance's quota (bytes of upper data; 0 for none), durably. Data it already holds
    /// past a lower quota stays; only new blocks are refused.
    /// </summary>
    public Task SetQuotaAsync(string name, long quota)
    {
        InstanceNamespace.CheckQuota(quota);
        return _namespace.RedefineAsync(name, d => d with { Quota = quota }, new SetQuotaRecord(quota));
    }

    /// <summary>
    /// Sets who may see and open an instance over NBD (<see cref="InstanceAccess.Open"/>: everyone),
    /// durably. A server applies it to new connections; connections already open stay.
    /// </summary>
    public Task SetAccessAsync(string name, InstanceAccess access) =>
        _namespace.RedefineAsync(name, d => d with { Access = access }, new SetAccessRecord(access));

    /// <summary>
    /// Sets an instance's limits and weight, durably. A server applies them to its open
    /// connections too (the export reads them at each admission).
    /// </summary>
    public Task SetQosAsync(string name, InstanceQos qos) =>
        _namespace.RedefineAsync(name, d => d with { Qos = qos }, new SetQosRecord(qos));

    /// <summary>
    /// Deletes an instance: durable when this returns, and its blocks are free for reuse
    /// from then on (never before the delete record is durable).
    /// </summary>
    public Task DeleteInstanceAsync(string name) => _namespace.DeleteAsync(name);

    /// <summary>
    /// Creates <paramref name="target"/> as a copy of <paramref name="source"/>'s view in the store:
    /// same definition and base, its upper data and zeroed ranges copied (never shared), durable
    /// when this returns. <paramref name="progress"/> hears (done, total) bytes of upper data;
    /// <paramref name="stop"/> ends the copy between chunks. If it fails or is stopped, the new
    /// instance is deleted again. Dirty data held by a server is not in the store: flush first.
    /// </summary>
    /// <returns>The new instance and the bytes of upper data copied.</returns>
    public Task<(StoreInstance Clone, long CopiedBytes)> CloneInstanceAsync(string source, string target,
        Action<long, long>? progress = null, CancellationToken stop = default) =>
        _cloner.CloneAsync(source, target, progress, stop);

    /// <summary>
    /// Writes whole blocks of an instance: to new store blocks, durably, then maps them.
    /// Not yet committed: a crash before <see cref="CommitAsync(StoreInstance)"/> may undo it.
    /// </summary>
    public ValueTask WriteAsync(StoreInstance instance, long virtualBlock, ReadOnlyMemory<byte> data, WriteReason reason = WriteReason.Flush) =>
        _data.WriteBlocksAsync(instance, [(virtualBlock, data.Length / BlockSize)], data, reason);

    /// <summary>
    /// Writes runs of an instance's virtual blocks, in the order given and not necessarily
    /// adjacent, from consecutive blocks of <paramref name="data"/>: they land in freshly
    /// allocated store blocks that are as contiguous as free space allows, so scattered
    /// virtual blocks still go to the device in few large writes. Durable, then mapped;
    /// not yet committed. Data in an <see cref="AlignedBuffer"/> is written without a copy.
    /// Blocks reserved (<see cref="StoreInstance.TryReserve"/>) become upper blocks in the same
    /// step as they are mapped; if it fails, nothing is mapped and the reservations stay.
    /// </summary>
    public ValueTask WriteBlocksAsync(StoreInstance instance, IReadOnlyList<(long VirtualBlock, long Length)> runs,
        ReadOnlyMemory<byte> data, WriteReason reason) =>
        _data.WriteBlocksAsync(instance, runs, data, reason);

    /// <summary>
    /// <see cref="WriteBlocksAsync(StoreInstance, IReadOnlyList{ValueTuple{long, long}}, ReadOnlyMemory{byte}, WriteReason)"/>
    /// from segments, one after another, instead of one buffer: each is written from its own
    /// memory (a gather write), with no copy, so each must be aligned as
    /// <see cref="IBlockDevice"/> demands (an <see cref="AlignedBuffer"/>, or the write-back
    /// cache's blocks); the device refuses others with <see cref="ArgumentException"/>. The
    /// segments must not change until the write has returned.
    /// </summary>
    public ValueTask WriteBlocksAsync(StoreInstance instance, IReadOnlyList<(long VirtualBlock, long Length)> runs,
        ReadOnlyMemory<ReadOnlyMemory<byte>> segments, WriteReason reason) =>
        _data.WriteBlocksAsync(instance, runs, segments, reason);

    /// <summary>Makes whole blocks read as zeros, releasing their upper blocks and reservations (not yet committed).</summary>
    public void Zero(StoreInstance instance, long virtualBlock, long count) => _data.Zero(instance, virtualBlock, count);

    /// <summary>
    /// Reads whole blocks of an instance. Fills the parts held in the store and describes the
    /// range in <paramref name="layout"/>: the caller fills Base parts from the base image and
    /// Zero parts with zeros.
    /// </summary>
    public ValueTask ReadAsync(StoreInstance instance, long virtualBlock, Memory<byte> destination, List<MappedExtent> layout) =>
        _data.ReadAsync(instance, virtualBlock, destination, layout);

    /// <summary>Describes a range of an instance without reading it (block status).</summary>
    public void Lookup(StoreInstance instance, long virtualBlock, long count, List<MappedExtent> layout) =>
        _data.Lookup(instance, virtualBlock, count, layout);

    /// <summary>
    /// Makes every write and zeroing of this instance done so far durable, in one commit of
    /// this instance only. Cheap when there is nothing to commit.
    /// </summary>
    /// <returns>The bytes this instance's commit took in the journal (its share of a shared batch).</returns>
    public Task<long> CommitAsync(StoreInstance instance) => _committer.CommitAsync(instance);

    /// <summary>
    /// Writes a checkpoint of every instance and moves the journal's replay start forward.
    /// With <paramref name="clean"/> it also marks the store cleanly shut down.
    /// </summary>
    public Task CheckpointAsync(bool clean = false) => _checkpointer.CheckpointAsync(clean);

    /// <summary>Checkpoints, marks the store cleanly shut down, and stops accepting work.</summary>
    public async ValueTask DisposeAsync()
    {
        await _checkpointer.CloseAsync();
        _journal.Dispose();
        _namespace.Dispose();
        _checkpointer.Dispose();
        _order.Dispose();
    }
}
