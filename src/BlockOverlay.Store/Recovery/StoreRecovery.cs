using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Recovery;

/// <summary>What recovery found: the store's last durable state, ready to open.</summary>
internal sealed record RecoveredStore(Superblock Superblock, IReadOnlyCollection<StoreInstance> Instances, BlockAllocator Allocator,
    long JournalHead, ulong JournalSequence, ulong LastCommitNumber, CheckpointIndex Checkpoint);

/// <summary>What a checkpoint holds, whichever its format: the commits it holds, every instance with its map, and its parts.</summary>
internal sealed record CheckpointImage(ulong CommitsThrough, List<CheckpointInstance> Instances, CheckpointIndex Index);

/// <summary>An incremental checkpoint without its maps: the commits it holds, every instance's entry (where its segment is), and its parts.</summary>
internal sealed record CheckpointDirectory(ulong CommitsThrough, List<GroupEntry> Entries, CheckpointIndex Index);

/// <summary>Recovery: the store's last durable state from the superblock, the checkpoint and the journal.</summary>
/// <remarks>
/// <para>
/// <b>Steps.</b> Load the newest valid superblock copy and the checkpoint it names, replay the
/// journal's valid prefix over it (skipping the data commits the checkpoint already holds: see
/// <see cref="Checkpoints.CommitOrder"/>), mark volatile instances unclean after a crash, and rebuild
/// free space as everything no map and no checkpoint part names. The checkpoint is whole (the
/// older format: every map is read, and the next checkpoint writes them all as segments) or
/// incremental (a root, groups, map segments, space pages).
/// </para>
/// <para>
/// <b>Lazy maps.</b> Of an incremental checkpoint only the root, the groups and the space pages
/// are read: each instance starts unloaded, held by the checkpoint as is, and reads its segment
/// when first needed (<see cref="StoreInstance.LoadAsync"/>). Replay needs the maps it changes,
/// so it first loads those of the instances the replayed commits name, and of the instances a
/// replayed create displaces (same name, older id): bounded by the journal, not the store. Free
/// space then comes from the space record (every block the checkpoint's segments name) less the
/// segments of the instances loaded here (their maps now say what they hold, replay included;
/// a displaced or deleted one holds nothing), plus those maps.
/// </para>
/// <para>
/// <b>Invariants.</b> A store block named twice by what is read (the checkpoint's parts, the
/// space record, the loaded maps), or outside the data region, is corruption and refuses to
/// open; so does a checkpoint whose checksum or sequence does not match its superblock. Two
/// segments left unread that name one block are not seen here: the checker reads them all.
/// Instance ids are never reused, deleted ones included.
/// </para>
/// <para><b>Locking.</b> None: nothing else sees the store until recovery is done.</para>
/// <para><b>Durability.</b> Reads only; the open then marks the store in use.</para>
/// </remarks>
internal static class StoreRecovery
{
    private const int BlockSize = Superblock.Size;

    public static async Task<RecoveredStore> RecoverAsync(IBlockDevice device)
    {
        var superblock = await SuperblockPublisher.ReadNewestAsync(device);
        if (superblock.RequiresReadOnly)
        {
            throw new StoreFormatException(
                $"the store uses read-only-compatible features 0x{superblock.ReadOnlyCompatibleFeatures:x} this build cannot write");
        }

        var instances = new Dictionary<uint, StoreInstance>();
        ulong commitsThrough = 0;
        var index = CheckpointIndex.Empty();
        if (superblock.IncrementalCheckpoint)
        {
            var directory = await ReadDirectoryAsync(device, superblock);
            (commitsThrough, index) = (directory.CommitsThrough, directory.Index);
            foreach (var entry in directory.Entries)
            {
                instances[entry.Definition.Id] = new StoreInstance(entry.Definition, entry.Segment);
            }
        }
        else if (superblock.CheckpointStart != 0)
        {
            var checkpoint = await ReadCheckpointAsync(device, superblock);
            commitsThrough = checkpoint.CommitsThrough;
            instances = Load(checkpoint.Instances, asCheckpointed: false);
        }

        var (commits, position, sequence) = await MetadataJournal.ReplayAsync(device, superblock);
        var replayed = commits.Where(c => Replays(c, commitsThrough)).ToList();
        var loadedSegments = await LoadReplayedAsync(device, instances, replayed);
        uint highestId = instances.Count == 0 ? 0 : instances.Keys.Max();
        ulong lastCommit = commitsThrough;
        foreach (var commit in commits)
        {
            if (Replays(commit, commitsThrough))
            {
                Apply(instances, commit);
            }

            highestId = Math.Max(highestId, commit.InstanceId); // deleted ones too: ids are never reused
            lastCommit = Math.Max(lastCommit, commit.Number);
        }

        if (!superblock.Clean)
        {
            // A volatile instance's flushes promised nothing: after a crash its content is
            // whatever reached the store, and it says so until an operator sets its mode again.
            foreach (var instance in instances.Values.Where(i => i.Definition.FlushMode == FlushMode.Volatile))
            {
                instance.Redefine(instance.Definition with { Unclean = true });
            }
        }

        var allocator = RebuildFreeSpace(superblock, index, loadedSegments, instances.Values);
        uint nextId = Math.Max(superblock.NextInstanceId, highestId + 1);
        return new RecoveredStore(superblock with { NextInstanceId = nextId }, instances.Values, allocator, position, sequence, lastCommit, index);
    }

    /// <summary>
    /// Loads the maps replay will change or drop: of every instance a replayed commit names, and
    /// of every one a replayed create displaces (see <see cref="Apply"/>). Returns the upper runs
    /// their segments named, which the space record marks but their maps now answer for.
    /// </summary>
    private static async Task<List<(long Start, long Length)>> LoadReplayedAsync(IBlockDevice device, Dictionary<uint, StoreInstance> instances,
        List<JournalCommit> replayed)
    {
        var names = replayed.SelectMany(c => c.Records.OfType<CreateInstanceRecord>()).Select(r => r.Definition.Name).ToHashSet(StringComparer.Ordinal);
        var ids = replayed.Select(c => c.InstanceId).ToHashSet();
        var segmentRuns = new List<(long, long)>();
        foreach (var instance in instances.Values.Where(i => !i.IsLoaded && (ids.Contains(i.Definition.Id) || names.Contains(i.Name))))
        {
            var extents = await CheckpointPartReader.ReadSegmentAsync(device, instance.Definition.Id, instance.Segment);
            instance.Install(extents);
            segmentRuns.AddRange(extents.Where(e => !e.Zero && e.Length > 0).Select(e => (e.StoreBlock, e.Length)));
        }

        return segmentRuns;
    }

    /// <summary>
    /// The instances a checkpoint holds, each with its map (the last of a repeated id counts).
    /// <paramref name="asCheckpointed"/>: each is exactly what the current incremental checkpoint
    /// holds of it, so the next checkpoint keeps its segment unless it changes (an instance of a
    /// whole-format checkpoint has no segment yet: the next checkpoint writes it).
    /// </summary>
    internal static Dictionary<uint, StoreInstance> Load(IEnumerable<CheckpointInstance> checkpoint, bool asCheckpointed)
    {
        var instances = new Dictionary<uint, StoreInstance>();
        foreach (var saved in checkpoint)
        {
            var instance = new StoreInstance(saved.Definition);
            foreach (var e in saved.Extents)
            {
                if (e.Zero)
                {
                    instance.RecoverZero(e.VirtualBlock, e.Length);
                }
                else
                {
                    instance.RecoverMapping(e.VirtualBlock, e.Length, e.StoreBlock);
                }
            }

            if (asCheckpointed)
            {
                instance.RecoveredFromCheckpoint();
            }

            instances[saved.Definition.Id] = instance;
        }

        return instances;
    }

    /// <summary>
    /// Whether replay applies a commit over a checkpoint that holds the commits through
    /// <paramref name="commitsThrough"/>: one taken before the checkpoint took the maps is already
    /// in them (or something newer is).
    /// </summary>
    internal static bool Replays(JournalCommit commit, ulong commitsThrough) => commit.Number == 0 || commit.Number > commitsThrough;

    /// <summary>
    /// The checkpoint the superblock names, whole or incremental, with every map (the checker's
    /// view), refused unless every part's checksum matches what names it and its sequence
    /// matches the superblock's.
    /// </summary>
    internal static async Task<CheckpointImage> ReadCheckpointAsync(IBlockDevice device, Superblock superblock)
    {
        if (superblock.IncrementalCheckpoint)
        {
            var directory = await ReadDirectoryAsync(device, superblock);
            var withMaps = new List<CheckpointInstance>(directory.Entries.Count);
            foreach (var entry in directory.Entries)
            {
                withMaps.Add(new CheckpointInstance(entry.Definition, await CheckpointPartReader.ReadSegmentAsync(device, entry.Definition.Id, entry.Segment)));
            }

            return new CheckpointImage(directory.CommitsThrough, withMaps, directory.Index);
        }

        long blocks = Superblock.BlocksFor(superblock.CheckpointBytes);
        using var buffer = new AlignedBuffer((int)(blocks * BlockSize));
        await device.ReadAsync(superblock.CheckpointStart * BlockSize, buffer.Memory);
        var bytes = buffer.Span[..(int)superblock.CheckpointBytes];
        string where = $"checkpoint at block {superblock.CheckpointStart} ({superblock.CheckpointBytes} bytes)";
        if (Checksums.Of(bytes) != superblock.CheckpointChecksum)
        {
            throw new StoreFormatException($"{where}: does not match the checksum the superblock records (corrupt)");
        }

        var (sequence, commitsThrough, instances) = CheckpointFormat.Decode(bytes, where);
        return sequence != superblock.ReplaySequence
            ? throw new StoreFormatException($"{where}: made for journal sequence {sequence}, the superblock replays from {superblock.ReplaySequence}")
            : new CheckpointImage(commitsThrough, instances, CheckpointIndex.Empty());
    }

    /// <summary>An incremental checkpoint but its maps: the root, every group and every space page.</summary>
    private static async Task<CheckpointDirectory> ReadDirectoryAsync(IBlockDevice device, Superblock superblock)
    {
        string where = $"checkpoint root at block {superblock.CheckpointStart} ({superblock.CheckpointBytes} bytes)";
        var root = CheckpointParts.DecodeRoot(
            await CheckpointPartReader.ReadAsync(device, superblock.CheckpointStart, superblock.CheckpointBytes, superblock.CheckpointChecksum, where), where);
        if (root.ReplaySequence != superblock.ReplaySequence)
        {
            throw new StoreFormatException($"{where}: made for journal sequence {root.ReplaySequence}, the superblock replays from {superblock.ReplaySequence}");
        }

        var entries = new List<GroupEntry>(root.InstanceCount);
        var groups = new Dictionary<long, CheckpointGroup>();
        foreach (var part in root.Groups)
        {
            string group = $"checkpoint group {part.Index}";
            var members = CheckpointParts.DecodeGroup(await CheckpointPartReader.ReadAsync(device, part.StoreBlock, part.Bytes, part.Checksum, group),
                part.Count, group);
            if (members.Any(e => CheckpointIndex.GroupOf(e.Definition.Id) != part.Index) || !groups.TryAdd(part.Index, new CheckpointGroup(part,
                    members.ToDictionary(e => e.Definition.Id, e => e.Segment))))
            {
                throw new StoreFormatException($"{group}: holds an instance of another group, or comes twice");
            }

            entries.AddRange(members);
        }

        var space = new SpaceRecord();
        var pages = new Dictionary<long, PartRef>();
        foreach (var part in root.SpacePages)
        {
            string page = $"checkpoint space page {part.Index}";
            var bytes = await CheckpointPartReader.ReadAsync(device, part.StoreBlock, part.Bytes, part.Checksum, page);
            if (!pages.TryAdd(part.Index, part)) // its length is a page's: DecodeRoot checked
            {
                throw new StoreFormatException($"{page}: comes twice");
            }

            space.Load(part.Index, bytes);
        }

        // As many instances as the root names: DecodeRoot checked its count against its groups', and each group held its own.
        return new CheckpointDirectory(root.CommitsThrough, entries, new CheckpointIndex(groups, pages, space));
    }

    /// <summary>Applies one replayed commit. Records of instances deleted later are skipped.</summary>
    internal static void Apply(Dictionary<uint, StoreInstance> instances, JournalCommit commit)
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
                    instance.RecoverMapping(map.VirtualBlock, map.Length, map.StoreBlock);
                    break;
                case SetFlushModeRecord mode when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Redefine(instance.Definition with { FlushMode = mode.FlushMode, Unclean = false });
                    break;
                case SetQuotaRecord quota when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Redefine(instance.Definition with { Quota = quota.Quota });
                    break;
                case SetAccessRecord access when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Redefine(instance.Definition with { Access = access.Access });
                    break;
                case SetQosRecord qos when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.Redefine(instance.Definition with { Qos = qos.Qos });
                    break;
                case ZeroRecord zero when instances.TryGetValue(commit.InstanceId, out var instance):
                    instance.RecoverZero(zero.VirtualBlock, zero.Length);
                    break;
            }
        }
    }

    /// <summary>
    /// Free space is everything in the data region that no map and no checkpoint part names: the
    /// parts, the space record less <paramref name="segmentRuns"/> (the segments of the maps
    /// loaded for replay), and every loaded map.
    /// </summary>
    private static BlockAllocator RebuildFreeSpace(Superblock superblock, CheckpointIndex index, List<(long Start, long Length)> segmentRuns,
        IEnumerable<StoreInstance> instances)
    {
        var allocator = new BlockAllocator(superblock.DataStart, superblock.DeviceBlocks - superblock.DataStart);
        if (superblock.CheckpointStart != 0)
        {
            Mark(allocator, superblock.CheckpointStart, Superblock.BlocksFor(superblock.CheckpointBytes), "the checkpoint root");
        }

        foreach (var (start, length, what) in index.Runs())
        {
            Mark(allocator, start, length, what);
        }

        // Less the loaded maps' segments before anything is marked: a block one of them named
        // may have been freed by a replayed commit and reused, even by the checkpoint's own parts.
        SpaceRecord unloaded;
        try
        {
            unloaded = index.Space.Without(segmentRuns);
        }
        catch (InvalidOperationException e)
        {
            throw new StoreFormatException($"a map segment names blocks the checkpoint's space record does not mark ({e.Message}): the metadata is corrupt");
        }

        foreach (var (start, length) in unloaded.MarkedRuns())
        {
            Mark(allocator, start, length, "the checkpoint's space record (maps not loaded)");
        }

        foreach (var instance in instances)
        {
            foreach (var extent in instance.RecoveredUpperExtents)
            {
                Mark(allocator, extent.StoreBlock, extent.Length, $"instance '{instance.Name}'");
            }
        }

        return allocator;
    }

    private static void Mark(BlockAllocator allocator, long start, long length, string owner)
    {
        try
        {
            allocator.MarkAllocated(start, length);
        }
        catch (InvalidOperationException)
        {
            throw new StoreFormatException(
                $"store blocks {start}+{length} of {owner} are outside the data region or already named by another mapping: the metadata is corrupt");
        }
    }
}
