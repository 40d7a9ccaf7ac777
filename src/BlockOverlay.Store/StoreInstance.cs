using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Quota;

namespace BlockOverlay.Store;

/// <summary>
/// The store's state of one instance: its definition, its extent map and what its next
/// commit must carry. Owned by <see cref="UpperStore"/>; the Engine holds it as a handle.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> The map is loaded (in memory) or not: an instance read from an incremental
/// checkpoint starts unloaded, its map only in the segment <c>_segment</c> names (whose entry's
/// counts answer <see cref="ExtentCount"/> and <see cref="UpperBlocks"/> meanwhile), until
/// <see cref="LoadAsync"/> reads it; a new instance, or one of an older whole-format
/// checkpoint, is loaded from the start. Loading happens once and is never undone.
/// Map entries not yet journaled are "uncommitted". <c>_freeAfterCommit</c> holds
/// store blocks that a durable mapping still names but the current map no longer does: they
/// become free once the commit that changes the mapping is durable (DESIGN.md, invariant 4).
/// <c>_retryRecords</c> holds records of a commit (or a checkpoint) that failed, so the next
/// commit carries them first. <c>_takenBy</c> is the last checkpoint that took this instance's
/// changes (null while none has, or after one failed and gave them back), and
/// <c>_checkpointedThrough</c> the commit number it took them at (see <see cref="Checkpoints.CommitOrder"/>). Deleted: its delete
/// record is being written or is durable; checkpoints leave it out and writes fail. <c>_changed</c>:
/// something a checkpoint must take happened since the last one took it (a map change, a new
/// definition, blocks or records waiting for a commit, a failed checkpoint, being left out);
/// while it is false the current checkpoint's segment and entry hold exactly this state.
/// </para>
/// <para>
/// <b>Invariants.</b> Every change of this state is one of the methods of this class (those of
/// commits and checkpoints in StoreInstance.Commits.cs), each a whole step under the gate, named for what happened (a write was mapped, a commit was taken or failed,
/// a checkpoint took or gave back); nothing outside edits the lists or flags. While unloaded
/// nothing can change the map (every use of it throws), so there is nothing to commit and the
/// segment stays exactly what the current checkpoint holds: a checkpoint keeps it, rewriting
/// only the entry if the definition changed.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_gate</c> guards all of it and is held only for memory work, never across
/// I/O, and no other lock is taken inside it. A load reads the segment outside it and installs
/// the map under it; two first uses at once share one read (<c>_loading</c>). <see cref="CommitLock"/> (async) makes this
/// instance's commits run one at a time (see <see cref="UpperStore.CommitAsync"/>).
/// </para>
/// <para>
/// <b>Durability.</b> Memory only: the journal and checkpoints make it durable; recovery rebuilds
/// it through the <c>Recover…</c> methods before anyone else can see the instance.
/// </para>
/// </remarks>
public sealed partial class StoreInstance
{
    private readonly Lock _gate = new();
    private ExtentMap? _map;
    private readonly SegmentRef _segment;
    private Task? _loading;
    private InstanceDefinition _definition;
    private List<(long Start, long Length)> _freeAfterCommit = [];
    private List<JournalRecord> _retryRecords = [];
    private Task? _takenBy;
    private ulong _checkpointedThrough;
    private bool _deleted;
    private bool _pending;
    private bool _changed = true;
    private readonly QuotaReservations _reservations = new();

    internal StoreInstance(InstanceDefinition definition, bool pending = false) => (_definition, _pending, _map) = (definition, pending, new ExtentMap());

    /// <summary>An instance the current incremental checkpoint holds, its map left in <paramref name="segment"/> until first needed.</summary>
    internal StoreInstance(InstanceDefinition definition, SegmentRef segment) => (_definition, _segment, _changed) = (definition, segment, false);

    /// <summary>The definition; replaced whole (never edited) when the flush mode or quota changes.</summary>
    public InstanceDefinition Definition => Volatile.Read(ref _definition);

    public string Name => Definition.Name;

    /// <summary>Size of the virtual disk in blocks.</summary>
    public long Blocks => Definition.VirtualSize / Superblock.Size;

    /// <summary>Held by a commit of this instance from taking its records until they are durable (or failed).</summary>
    internal SemaphoreSlim CommitLock { get; } = new(1, 1);

    /// <summary>Entries in this instance's map (each 24-48 bytes in memory, 32 in a checkpoint).</summary>
    public int ExtentCount
    {
        get
        {
            lock (_gate)
            {
                return _map?.ExtentCount ?? (int)_segment.ExtentCount;
            }
        }
    }

    /// <summary>
    /// The entry count read without the gate, for estimates taken under other locks (taking the
    /// gate there would invert the lock order): a few writes stale at worst, and an int cannot tear.
    /// </summary>
    internal int ExtentCountEstimate => Volatile.Read(ref _map)?.ExtentCount ?? (int)_segment.ExtentCount;

    /// <summary>Whether the map is in memory (see <see cref="LoadAsync"/>).</summary>
    internal bool IsLoaded => Volatile.Read(ref _map) is not null;

    /// <summary>Upper blocks this instance holds in the store.</summary>
    public long UpperBlocks
    {
        get
        {
            lock (_gate)
            {
                return _map?.UpperBlocks ?? _segment.UpperBlocks;
            }
        }
    }

    /// <summary>What counts against the quota: upper blocks plus reserved blocks, read at one instant.</summary>
    public long FootprintBlocks
    {
        get
        {
            lock (_gate)
            {
                return (_map?.UpperBlocks ?? _segment.UpperBlocks) + _reservations.Count;
            }
        }
    }

    /// <summary>Replaces the definition (the caller serializes changes); returns the one it replaced.</summary>
    internal InstanceDefinition Redefine(InstanceDefinition next)
    {
        lock (_gate)
        {
            _changed = true;
            return Interlocked.Exchange(ref _definition, next);
        }
    }

    /// <summary>Where the current checkpoint holds the map while it is not loaded.</summary>
    internal SegmentRef Segment => _segment;

    /// <summary>
    /// Reads the map from its checkpoint segment unless it is loaded already. Safe to call at
    /// once from many places: one reads, the others wait for it; a failed read leaves the
    /// instance unloaded (the next call tries again).
    /// </summary>
    internal async Task LoadAsync(IBlockDevice device)
    {
        TaskCompletionSource? mine = null;
        Task loading;
        SegmentRef segment;
        lock (_gate)
        {
            if (_map is not null)
            {
                return;
            }

            if (_loading is null)
            {
                mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _loading = mine.Task;
            }

            (loading, segment) = (_loading, _segment);
        }

        if (mine is null)
        {
            await loading;
            return;
        }

        try
        {
            Install(await ReadSegmentAsync(device, segment));
            mine.SetResult();
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                _loading = null;
            }

            mine.SetException(e);
            throw;
        }
    }

    /// <summary>
    /// The segment's extents. A segment that reads back damaged (checksum, bounds) is the
    /// device's failure, not a bug: an <see cref="IOException"/> (EIO for the request that needed
    /// the map) naming the instance and where, with the decoder's reason inside. At open such a
    /// segment would have refused the whole store; found lazily, it fails only this instance.
    /// </summary>
    private async Task<IReadOnlyList<CheckpointExtent>> ReadSegmentAsync(IBlockDevice device, SegmentRef segment)
    {
        try
        {
            return await CheckpointPartReader.ReadSegmentAsync(device, Definition.Id, segment);
        }
        catch (StoreFormatException e)
        {
            throw new IOException($"instance '{Name}': its map (the checkpoint segment at store block {segment.StoreBlock}) " +
                $"is damaged: {e.Message}; `blockoverlay store check` describes it", e);
        }
    }

    /// <summary>
    /// Loads the map from its segment's extents, read by the caller (recovery, or <see cref="LoadAsync"/>):
    /// committed, and unchanged as far as checkpoints go (the segment holds it).
    /// </summary>
    internal void Install(IReadOnlyList<CheckpointExtent> extents)
    {
        var map = new ExtentMap();
        foreach (var e in extents)
        {
            map.Set(e.VirtualBlock, e.Length, e.Zero ? ExtentKind.Zero : ExtentKind.Upper, e.Zero ? 0 : e.StoreBlock, committed: true, []);
        }

        lock (_gate)
        {
            if (_map is not null)
            {
                throw new InvalidOperationException($"the map of instance '{Name}' is loaded already");
            }

            Volatile.Write(ref _map, map);
            _loading = null;
        }
    }

    /// <summary>Recovery: a durable mapping of store blocks.</summary>
    internal void RecoverMapping(long virtualBlock, long length, long storeBlock)
    {
        Map.Set(virtualBlock, length, ExtentKind.Upper, storeBlock, committed: true, []);
        _changed = true;
    }

    /// <summary>Recovery: a durable zeroed range.</summary>
    internal void RecoverZero(long virtualBlock, long length)
    {
        Map.Set(virtualBlock, length, ExtentKind.Zero, 0, committed: true, []);
        _changed = true;
    }

    /// <summary>Recovery: the map and definition are exactly what the current checkpoint holds (its segment and entry).</summary>
    internal void RecoveredFromCheckpoint() => _changed = false;

    /// <summary>Recovery: the store runs this instance maps, if it is loaded (an unloaded one's are in the space record).</summary>
    internal IEnumerable<MappedExtent> RecoveredUpperExtents => _map?.Extents.Where(e => e.Kind == ExtentKind.Upper) ?? [];

    /// <summary>Describes a range (see <see cref="UpperStore.Lookup"/>).</summary>
    internal void Lookup(long virtualBlock, long count, List<MappedExtent> layout)
    {
        lock (_gate)
        {
            Map.Lookup(virtualBlock, count, layout);
        }
    }

    /// <summary>
    /// A data write reached its store blocks: maps the pieces (uncommitted), and their
    /// reservations end in the same step (they are upper blocks now).
    /// Replaced blocks never durably mapped go to <paramref name="freeNow"/>. Returns false and
    /// maps nothing if the instance is being deleted (read once, here: a delete that starts
    /// after the mapping, and may still fail, must not make this mapped write fail).
    /// </summary>
    internal bool MapWritten(IEnumerable<(long VirtualBlock, long StoreBlock, long Length)> pieces, List<(long, long)> freeNow)
    {
        var replaced = new List<MappedExtent>();
        lock (_gate)
        {
            if (_deleted)
            {
                return false;
            }

            foreach (var (virtualBlock, storeBlock, length) in pieces)
            {
                Map.Set(virtualBlock, length, ExtentKind.Upper, storeBlock, committed: false, replaced);
                _reservations.End(virtualBlock, length);
            }

            _changed = true;

            SortReplaced(replaced, freeNow);
            return true;
        }
    }

    /// <summary>
    /// Blocks now read as zeros (uncommitted), and their reservations end; replaced blocks never
    /// durably mapped go to <paramref name="freeNow"/>.
    /// </summary>
    internal void MapZero(long virtualBlock, long count, List<(long, long)> freeNow)
    {
        var replaced = new List<MappedExtent>();
        lock (_gate)
        {
            Map.Set(virtualBlock, count, ExtentKind.Zero, 0, committed: false, replaced);
            _reservations.End(virtualBlock, count);
            _changed = true;
            SortReplaced(replaced, freeNow);
        }
    }

    /// <summary>
    /// Being made (a clone being filled in): nothing of it is durable, checkpoints leave it out,
    /// and a crash forgets it; it becomes durable whole, when a checkpoint takes it after
    /// <see cref="Publish"/>.
    /// </summary>
    internal bool IsPending
    {
        get
        {
            lock (_gate)
            {
                return _pending;
            }
        }
    }

    /// <summary>Made whole: the next checkpoint takes it (with its whole map).</summary>
    internal void Publish()
    {
        lock (_gate)
        {
            _pending = false;
        }
    }

    /// <summary>A delete starts: from now on checkpoints leave the instance out and writes fail.</summary>
    internal void MarkDeleted() => SetDeleted(true);

    /// <summary>The delete record failed: the instance is back.</summary>
    internal void UnmarkDeleted() => SetDeleted(false);

    /// <summary>
    /// The delete record is durable: empties the map and returns every store run the instance
    /// held or was about to free. The map must be loaded (the delete loads it before its record).
    /// </summary>
    internal List<(long Start, long Length)> Empty()
    {
        var removed = new List<MappedExtent>();
        lock (_gate)
        {
            Map.Clear(removed);
            _reservations.Clear();
            List<(long, long)> runs = [.. removed.Where(e => e.Kind == ExtentKind.Upper).Select(e => (e.StoreBlock, e.Length)), .. _freeAfterCommit];
            _freeAfterCommit = [];
            return runs;
        }
    }

    /// <summary>
    /// The quota's one question, asked by a write-back cache before it takes blocks
    /// [<paramref name="first"/>, +<paramref name="count"/>): reserves those that are new space
    /// (neither upper nor reserved), if the footprint stays within the quota; otherwise reserves
    /// nothing and returns false. Always true without a quota (the blocks are reserved all the
    /// same, so they count against a quota set later). See <see cref="QuotaReservations"/>.
    /// </summary>
    public bool TryReserve(long first, long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(first);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Blocks - first);
        long quota = Definition.Quota / Superblock.Size;
        lock (_gate)
        {
            return _reservations.TryReserve(Map, first, count, quota);
        }
    }

    private void SetDeleted(bool deleted)
    {
        lock (_gate)
        {
            _deleted = deleted;
        }
    }

    /// <summary>The map, under the gate; an unloaded one is a caller that skipped <see cref="UpperStore.LoadAsync"/>: a bug.</summary>
    private ExtentMap Map => _map ?? throw new InvalidOperationException(
        $"the map of instance '{Name}' is not loaded: load it (UpperStore.LoadAsync) before using it");

    /// <summary>Replaced upper blocks: those a durable mapping may name wait for the next commit; the rest go now. The caller holds the gate.</summary>
    private void SortReplaced(List<MappedExtent> replaced, List<(long, long)> freeNow)
    {
        foreach (var e in replaced.Where(e => e.Kind == ExtentKind.Upper))
        {
            (e.Committed ? _freeAfterCommit : freeNow).Add((e.StoreBlock, e.Length));
        }
    }
}
