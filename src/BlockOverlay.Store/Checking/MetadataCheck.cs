using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Recovery;

namespace BlockOverlay.Store.Checking;

/// <summary>Map records of instances the store does not know: the blocks they name belong to nobody.</summary>
internal readonly record struct UnownedRun(uint InstanceId, long StoreBlock, long Length, string Where);

/// <summary>The instances as recovery would rebuild them, and the runs the journal names for nobody.</summary>
internal sealed record RebuiltMaps(IReadOnlyCollection<StoreInstance> Instances, IReadOnlyList<UnownedRun> Unowned, CheckpointIndex Checkpoint);

/// <summary>
/// The checkpoint and the journal, read the way recovery reads them (<see cref="StoreRecovery"/>,
/// <see cref="MetadataJournal"/>: the same code), but every problem is reported instead of
/// refusing at the first: a checkpoint that fails its checksum or sequence, a commit damaged
/// inside an intact batch, an intact batch past the log's end (whatever the clean flag says),
/// definitions, and each map entry before it is applied (inside its instance, inside the data
/// region). Entries that fail are reported and left out, so the ownership check that follows
/// sees only entries recovery could apply. A torn last batch is a note: a crash leaves one.
/// </summary>
internal static class MetadataCheck
{
    private const int BlockSize = Superblock.Size;

    /// <summary>The rebuilt maps; null when the checkpoint or the journal cannot be read, so no map can be trusted.</summary>
    public static async Task<RebuiltMaps?> RunAsync(IBlockDevice device, Superblock superblock, CheckLog log)
    {
        var instances = new Dictionary<uint, StoreInstance>();
        var known = new HashSet<uint>();
        ulong commitsThrough = 0;
        var index = CheckpointIndex.Empty();
        if (superblock.CheckpointStart != 0)
        {
            List<CheckpointInstance> saved;
            try
            {
                (commitsThrough, saved, index) = await StoreRecovery.ReadCheckpointAsync(device, superblock);
            }
            catch (StoreFormatException e)
            {
                log.Problem(StoreProblemKind.DamagedCheckpoint, e.Message);
                log.Note("maps: not checked (they start from the checkpoint)");
                return null;
            }

            DefinitionCheck.CheckCheckpoint(saved, superblock, log);
            if (superblock.IncrementalCheckpoint)
            {
                CheckSpaceRecord(saved, index, log);
            }

            instances = StoreRecovery.Load(saved.Select(i => i with { Extents = [.. i.Extents.Where(e => Applies(e, i.Definition, superblock, log))] }),
                asCheckpointed: false);
            known.UnionWith(instances.Keys);
            log.Note($"checkpoint: {superblock.CheckpointBytes} bytes at block {superblock.CheckpointStart}, {CheckLog.Count(saved.Count, "instance")}, " +
                     $"journal sequence {superblock.ReplaySequence}, data commits through {commitsThrough}");
        }
        else
        {
            log.Note("checkpoint: none yet");
        }

        List<JournalCommit> commits;
        long position;
        ulong sequence;
        try
        {
            (commits, position, sequence) = await MetadataJournal.ReadValidPrefixAsync(device, superblock);
        }
        catch (StoreFormatException e)
        {
            log.Problem(StoreProblemKind.DamagedJournal, e.Message);
            log.Note("maps: not checked (the journal cannot be replayed)");
            return null;
        }

        if (await MetadataJournal.FindIntactBatchPastAsync(device, superblock, sequence) is { } damage)
        {
            log.Problem(StoreProblemKind.DamagedJournal, damage);
        }

        bool torn = await MetadataJournal.EndsTornAsync(device, superblock, position, sequence);
        log.Note($"journal: {CheckLog.Count((long)(sequence - superblock.ReplaySequence), "batch", "batches")} " +
                 $"({CheckLog.Count(commits.Count, "commit")}) replay from block " +
                 $"{superblock.JournalStart + superblock.ReplayPosition}, sequence {superblock.ReplaySequence}; the log ends at block " +
                 $"{superblock.JournalStart + position}" +
                 (torn ? $", where batch {sequence} was torn by a crash and is cut (normal after a crash: it was never acknowledged)" : ""));

        var unowned = new List<UnownedRun>();
        int skipped = 0;
        foreach (var commit in commits)
        {
            if (!StoreRecovery.Replays(commit, commitsThrough))
            {
                skipped++;
                continue;
            }

            var applied = new List<JournalRecord>(commit.Records.Count);
            foreach (var record in commit.Records)
            {
                if (Applies(record, commit, instances, known, unowned, superblock, log))
                {
                    applied.Add(record);
                }
            }

            StoreRecovery.Apply(instances, commit with { Records = applied });
        }

        if (skipped > 0)
        {
            log.Note($"journal: {CheckLog.Count(skipped, "commit")} skipped, already held by the checkpoint");
        }

        // An instance deleted (or replaced) in the replayed journal explains records of its id; only ids never seen are nobody's.
        return new RebuiltMaps(instances.Values, [.. unowned.Where(u => !known.Contains(u.InstanceId))], index);
    }

    /// <summary>The space record must mark exactly the upper blocks the checkpoint's segments name (recovery and checkpoints rely on it).</summary>
    private static void CheckSpaceRecord(List<CheckpointInstance> saved, CheckpointIndex index, CheckLog log)
    {
        var named = new List<(long Start, long Length)>();
        foreach (var instance in saved)
        {
            named.AddRange(instance.Extents.Where(e => !e.Zero).Select(e => (e.StoreBlock, e.Length)));
        }

        var byMaps = Coalesce(named);
        var byRecord = Coalesce([.. index.Space.MarkedRuns()]);
        if (!byMaps.SequenceEqual(byRecord))
        {
            log.Problem(StoreProblemKind.SpaceRecordMismatch,
                $"checkpoint: the space record marks {byRecord.Sum(r => r.Length)} blocks in {byRecord.Count} runs, " +
                $"the maps name {byMaps.Sum(r => r.Length)} in {byMaps.Count} runs" +
                (byMaps.Except(byRecord).FirstOrDefault() is { Length: > 0 } m ? $"; e.g. blocks {m.Start}+{m.Length} named but not marked as such" : "") +
                (byRecord.Except(byMaps).FirstOrDefault() is { Length: > 0 } r ? $"; e.g. blocks {r.Start}+{r.Length} marked but not named as such" : ""));
        }
    }

    /// <summary>Runs sorted and merged where they touch (overlaps are the ownership check's business).</summary>
    private static List<(long Start, long Length)> Coalesce(List<(long Start, long Length)> runs)
    {
        runs.Sort((a, b) => a.Start.CompareTo(b.Start));
        var merged = new List<(long Start, long Length)>();
        foreach (var (start, length) in runs)
        {
            if (merged.Count > 0 && merged[^1].Start + merged[^1].Length >= start)
            {
                var last = merged[^1];
                merged[^1] = (last.Start, Math.Max(last.Length, start + length - last.Start));
            }
            else
            {
                merged.Add((start, length));
            }
        }

        return merged;
    }

    /// <summary>Whether a replayed record can be applied; what cannot is reported (or, for an unknown instance, noted as unowned).</summary>
    private static bool Applies(JournalRecord record, JournalCommit commit, Dictionary<uint, StoreInstance> instances, HashSet<uint> known,
        List<UnownedRun> unowned, Superblock superblock, CheckLog log)
    {
        instances.TryGetValue(commit.InstanceId, out var instance);
        string where = $"journal: a commit of instance {(instance is null ? $"id {commit.InstanceId}" : $"'{instance.Name}'")}";
        switch (record)
        {
            case CreateInstanceRecord create:
                DefinitionCheck.Check(create.Definition, "journal", log);
                known.Add(create.Definition.Id);
                return true;
            case DeleteInstanceRecord:
                known.Add(commit.InstanceId);
                return true;
            case MapRecord map when instance is null:
                unowned.Add(new UnownedRun(commit.InstanceId, map.StoreBlock, map.Length, where));
                return false;
            case MapRecord map:
                return InsideInstance(map.VirtualBlock, map.Length, instance.Definition, where, log) &&
                       InsideDataRegion(map.StoreBlock, map.Length, superblock, $"{where}, blocks {map.VirtualBlock}+{map.Length}", log);
            case ZeroRecord zero when instance is not null:
                return InsideInstance(zero.VirtualBlock, zero.Length, instance.Definition, where, log);
            default:
                return true;
        }
    }

    private static bool Applies(CheckpointExtent e, InstanceDefinition d, Superblock superblock, CheckLog log)
    {
        string where = $"checkpoint: instance '{d.Name}'";
        return InsideInstance(e.VirtualBlock, e.Length, d, where, log) &&
               (e.Zero || InsideDataRegion(e.StoreBlock, e.Length, superblock, $"{where}, blocks {e.VirtualBlock}+{e.Length}", log));
    }

    private static bool InsideInstance(long virtualBlock, long length, InstanceDefinition d, string where, CheckLog log)
    {
        long blocks = d.VirtualSize / BlockSize;
        if (virtualBlock >= 0 && length > 0 && virtualBlock <= blocks - length)
        {
            return true;
        }

        log.Problem(StoreProblemKind.MappingOutsideInstance, $"{where} maps virtual blocks {virtualBlock}+{length}; the instance has {blocks}");
        return false;
    }

    private static bool InsideDataRegion(long storeBlock, long length, Superblock superblock, string where, CheckLog log)
    {
        if (storeBlock >= superblock.DataStart && storeBlock <= superblock.DeviceBlocks - length)
        {
            return true;
        }

        string what = storeBlock < superblock.DataStart
            ? $"on the superblocks or the journal (data starts at block {superblock.DataStart})"
            : $"past the device's end (block {superblock.DeviceBlocks})";
        log.Problem(StoreProblemKind.MappingOutsideDataRegion, $"{where} lie at store blocks {storeBlock}+{length}, {what}");
        return false;
    }
}
