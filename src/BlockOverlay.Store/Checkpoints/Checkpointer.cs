using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Instances;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Checkpoints;

/// <summary>
/// Checkpoints, and the decision when one is needed: writes what changed since the last
/// checkpoint (the maps and definitions of the instances that changed, the groups and space
/// pages they touch, a new root) and a superblock naming it, moves the journal's tail, and
/// journals commits, checkpointing when the journal has no room.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> Open, or closed after the clean checkpoint of <see cref="CloseAsync"/> (then it,
/// and the store, take no more work). <see cref="Index"/> is the current checkpoint's parts.
/// </para>
/// <para>
/// <b>Invariants.</b> A checkpoint takes the journal head first and the instances after, so
/// commits racing it land after its replay position. It takes the instances at one point of the
/// <see cref="CommitOrder"/> and records that number: replay skips the commits it already holds
/// (their records may be older than its maps) and applies the newer ones over it. An instance
/// that changed since the last checkpoint is taken whole; one that did not keeps its segment,
/// which holds its state at that point too (no commit of it since carried anything). An
/// instance whose map is not loaded is never taken whole (nothing could change its map, and a
/// checkpoint must never write it empty): it keeps its segment, and its entry is rewritten with
/// its definition if that changed (see <see cref="StoreInstance.TakeForCheckpoint"/>). A taken
/// instance counts as committed by the checkpoint: its pending frees go once it is durable.
/// Until then what it took is marked committed but not durable, so commits of those instances
/// wait for it; if it fails, what it took goes back as records for their next commits, and
/// flushes waiting on it fail. The parts the new checkpoint no longer names (the old root,
/// replaced groups, pages and segments) are freed only after the new superblock is durable;
/// the space record (<see cref="SpaceRecord"/>) changes with it, never before.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> (async) serializes checkpoints and is held across their I/O; it
/// is never taken while holding another lock. A commit that finds the journal full waits for a
/// checkpoint here, which is why the namespace has its own lock.
/// </para>
/// <para>
/// <b>Durability.</b> Every part is written, then one flush, then the superblock that names the
/// root (FUA); the journal is released up to the checkpoint's replay position only after that.
/// </para>
/// </remarks>
internal sealed class Checkpointer(IBlockDevice device, MetadataJournal journal, CommitOrder order, InstanceRegistry instances,
    StoreSpace space, ReadQuarantine quarantine, SuperblockPublisher superblock, StoreCounters counters, CheckpointIndex index) : IDisposable
{
    private const int BlockSize = Superblock.Size;
    private const int MakeRoomAttempts = 2;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private CheckpointIndex _index = index;
    private bool _closed;

    /// <summary>The current checkpoint's parts (but its root), as of the last one that became durable.</summary>
    public CheckpointIndex Index => Volatile.Read(ref _index);

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
        var live = new List<InstanceDefinition>();
        var saved = new Dictionary<uint, CheckpointInstance>();
        var redefined = new List<uint>();
        ulong commitsThrough = order.TakeForCheckpoint(through =>
        {
            foreach (var instance in instances.All)
            {
                // Null while its delete record is being written (it must not come back from here) or while it is being made.
                if (instance.TakeForCheckpoint(durable, through) is not { } took)
                {
                    continue;
                }

                live.Add(took.Definition);
                if (took.Changed)
                {
                    taken.Add((instance, took.Frees));
                }

                if (took.Extents is { } extents)
                {
                    saved[took.Definition.Id] = new CheckpointInstance(took.Definition, extents);
                }
                else if (took.Changed)
                {
                    redefined.Add(took.Definition.Id); // unloaded: its segment stays, its entry changes
                }
            }
        });

        var frees = taken.SelectMany(t => t.Item2).ToList();
        var current = superblock.Current;
        var allocated = new List<(long Start, long Length)>();
        try
        {
            var written = await WritePartsAsync(live, saved, redefined, sequence, commitsThrough, allocated);
            await superblock.PublishAsync(current with
            {
                CheckpointStart = written.Root.Start,
                CheckpointBytes = written.Root.Bytes,
                CheckpointChecksum = written.Root.Checksum,
                ReplayPosition = position,
                ReplaySequence = sequence,
                Clean = clean,
                IncompatibleFeatures = Superblock.FeaturesOf(current.IncompatibleFeatures, live),
            });
            written.Space.Apply();
            Volatile.Write(ref _index, written.Index);
            frees.AddRange(written.Released);
        }
        catch (Exception)
        {
            quarantine.Free(allocated); // no superblock names these parts: their blocks are free again
            throw;
        }

        journal.Release(position);
        if (current.CheckpointStart != 0)
        {
            frees.Add((current.CheckpointStart, Superblock.BlocksFor(current.CheckpointBytes))); // the old root (or whole-format checkpoint)
        }

        quarantine.Free(frees);
    }

    /// <summary>
    /// Writes what changed since the current checkpoint (not yet durable; one flush at the end):
    /// the segments of the instances taken whole, the groups whose entries changed, the space
    /// pages whose blocks changed, and a root naming every part, old and new. Returns the parts
    /// the new checkpoint no longer names, to free once it is durable.
    /// </summary>
    private async Task<WrittenCheckpoint> WritePartsAsync(List<InstanceDefinition> live, Dictionary<uint, CheckpointInstance> saved,
        List<uint> redefined, ulong sequence, ulong commitsThrough, List<(long Start, long Length)> allocated)
    {
        var index = _index;
        var members = live.GroupBy(d => CheckpointIndex.GroupOf(d.Id)).ToDictionary(g => g.Key, g => g.OrderBy(d => d.Id).ToList());
        var liveIds = live.Select(d => d.Id).ToHashSet();

        // A group changes when an instance of it was taken whole or redefined while unloaded, or one came or went.
        var changed = new SortedSet<long>(saved.Keys.Concat(redefined).Select(CheckpointIndex.GroupOf));
        changed.UnionWith(members.Keys.Where(g => !index.Groups.ContainsKey(g)));
        changed.UnionWith(index.Groups.Where(g => !members.TryGetValue(g.Key, out var now) || now.Count != g.Value.Members.Count ||
                                                  now.Any(d => !g.Value.Members.ContainsKey(d.Id))).Select(g => g.Key));

        // The space record loses the old segments replaced or dropped, then gains the new ones.
        var released = new List<(long, long)>();
        var space = new SpaceRecord.Edit(index.Space);
        foreach (long g in changed)
        {
            if (!index.Groups.TryGetValue(g, out var old))
            {
                continue;
            }

            released.Add((old.Ref.StoreBlock, old.Ref.Blocks));
            foreach (var (id, segment) in old.Members.Where(m => m.Value.StoreBlock != 0 && (saved.ContainsKey(m.Key) || !liveIds.Contains(m.Key))))
            {
                released.Add((segment.StoreBlock, segment.Blocks));
                foreach (var e in await CheckpointPartReader.ReadSegmentAsync(device, id, segment))
                {
                    if (!e.Zero)
                    {
                        space.Clear(e.StoreBlock, e.Length);
                    }
                }
            }
        }

        var segments = new Dictionary<uint, SegmentRef>();
        foreach (var (id, instance) in saved)
        {
            long upper = 0;
            foreach (var e in instance.Extents.Where(e => !e.Zero))
            {
                space.Mark(e.StoreBlock, e.Length);
                upper += e.Length;
            }

            if (instance.Extents.Count == 0)
            {
                segments[id] = SegmentRef.None;
                continue;
            }

            var (block, bytes, checksum) = await WritePartAsync(CheckpointParts.EncodeSegment(instance.Extents), allocated);
            segments[id] = new SegmentRef(block, bytes, checksum, instance.Extents.Count, upper);
        }

        var groups = new Dictionary<long, CheckpointGroup?>();
        foreach (long g in changed)
        {
            if (!members.TryGetValue(g, out var definitions))
            {
                groups[g] = null;
                continue;
            }

            // An instance not taken whole did not change since the current checkpoint, which holds it.
            var entries = definitions.Select(d => new GroupEntry(d, segments.TryGetValue(d.Id, out var s) ? s
                : index.SegmentOf(d.Id) ?? throw new InvalidOperationException($"instance {d.Id} is unchanged but no checkpoint holds it"))).ToList();
            var (block, bytes, checksum) = await WritePartAsync(CheckpointParts.EncodeGroup(entries), allocated);
            groups[g] = new CheckpointGroup(new PartRef(g, block, bytes, entries.Count, checksum), entries.ToDictionary(e => e.Definition.Id, e => e.Segment));
        }

        var pages = new Dictionary<long, PartRef?>();
        foreach (var (p, page) in space.Changed)
        {
            var before = index.Space.Page(p);
            if (before is not null && before.AsSpan().SequenceEqual(page))
            {
                continue; // marks cleared and set again: the page stays where it is
            }

            if (index.Pages.TryGetValue(p, out var old))
            {
                released.Add((old.StoreBlock, old.Blocks));
            }

            if (!page.AsSpan().ContainsAnyExcept((byte)0))
            {
                pages[p] = null; // nothing marked in it any more: the page goes
                continue;
            }

            var (block, bytes, checksum) = await WritePartAsync(page, allocated);
            pages[p] = new PartRef(p, block, bytes, SpaceRecord.CountMarked(page), checksum);
        }

        var next = index.Next(groups, pages);
        var rootBytes = CheckpointParts.EncodeRoot(new CheckpointRoot(sequence, commitsThrough, live.Count,
            [.. next.Groups.OrderBy(g => g.Key).Select(g => g.Value.Ref)], [.. next.Pages.OrderBy(p => p.Key).Select(p => p.Value)]));
        var root = await WritePartAsync(rootBytes, allocated);
        await device.FlushAsync(); // every part durable before the superblock that names the root
        return new WrittenCheckpoint(root, next, space, released);
    }

    /// <summary>Writes one part to a contiguous run of its own (not yet durable); returns where, its length and checksum.</summary>
    private async Task<(long Start, int Bytes, ulong Checksum)> WritePartAsync(byte[] bytes, List<(long Start, long Length)> allocated)
    {
        long blocks = Superblock.BlocksFor(bytes.Length);
        var run = space.AllocateForCheckpoint(blocks);
        allocated.Add(run);
        using (var buffer = new AlignedBuffer((int)(blocks * BlockSize)))
        {
            bytes.CopyTo(buffer.Span);
            await device.WriteAsync(run.Start * BlockSize, buffer.Memory, durable: false);
        }

        counters.Add(WriteReason.Checkpoint, blocks * BlockSize);
        return (run.Start, bytes.Length, Checksums.Of(bytes));
    }

    /// <summary>What a checkpoint wrote: its root, its index and space record once durable, and the old parts it no longer names.</summary>
    private sealed record WrittenCheckpoint((long Start, int Bytes, ulong Checksum) Root, CheckpointIndex Index, SpaceRecord.Edit Space,
        List<(long, long)> Released);

    public void Dispose() => _lock.Dispose();
}
