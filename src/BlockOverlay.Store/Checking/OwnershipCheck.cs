using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Checking;

/// <summary>
/// Every store block has at most one owner: the maps of all instances and the checkpoint's parts are
/// sorted by store block and swept once, and any two runs that overlap are reported with both
/// owners. Blocks that the journal names for an unknown instance and that no owner holds are
/// leaked. The free count is what recovery's allocator would start from: the data region less
/// every owned block.
/// </summary>
internal static class OwnershipCheck
{
    private readonly record struct OwnedRun(long Start, long Length, string Owner)
    {
        public long End => Start + Length;
    }

    public static void Run(Superblock superblock, RebuiltMaps maps, CheckLog log)
    {
        var runs = new List<OwnedRun>();
        if (superblock.CheckpointStart != 0)
        {
            runs.Add(new OwnedRun(superblock.CheckpointStart, Superblock.BlocksFor(superblock.CheckpointBytes), "the checkpoint"));
        }

        runs.AddRange(maps.Checkpoint.Runs().Select(r => new OwnedRun(r.Start, r.Length, r.What)));

        long extents = 0;
        foreach (var instance in maps.Instances)
        {
            foreach (var e in instance.RecoveredUpperExtents)
            {
                runs.Add(new OwnedRun(e.StoreBlock, e.Length, $"instance '{instance.Name}' blocks {e.VirtualBlock}+{e.Length}"));
                extents++;
            }
        }

        runs.Sort((x, y) => x.Start.CompareTo(y.Start));
        var owned = Sweep(runs, log);
        long used = owned.Sum(r => r.End - r.Start);
        foreach (var run in maps.Unowned)
        {
            long leaked = run.Length - Covered(owned, run.StoreBlock, run.StoreBlock + run.Length);
            if (leaked > 0)
            {
                log.Problem(StoreProblemKind.LeakedBlocks,
                    $"{run.Where} names store blocks {run.StoreBlock}+{run.Length} ({leaked} of them owned by nobody), " +
                    $"but no instance {run.InstanceId} exists");
            }
        }

        long dataBlocks = superblock.DeviceBlocks - superblock.DataStart;
        log.Note($"maps: {CheckLog.Count(maps.Instances.Count, "instance")}, {CheckLog.Count(extents, "extent")}; {used} of {dataBlocks} data blocks owned " +
                 $"(checkpoint included), {dataBlocks - used} free");
    }

    /// <summary>Reports every overlap of sorted runs; returns the owned blocks as disjoint, sorted intervals.</summary>
    private static List<(long Start, long End)> Sweep(List<OwnedRun> runs, CheckLog log)
    {
        var owned = new List<(long Start, long End)>();
        OwnedRun? furthest = null; // of the runs so far, the one reaching furthest
        foreach (var run in runs)
        {
            if (furthest is { } f && run.Start < f.End)
            {
                long end = Math.Min(f.End, run.End);
                log.Problem(StoreProblemKind.BlockOwnedTwice, $"store blocks {run.Start}+{end - run.Start}: {f.Owner}, and {run.Owner}");
            }

            if (owned.Count > 0 && run.Start <= owned[^1].End)
            {
                owned[^1] = (owned[^1].Start, Math.Max(owned[^1].End, run.End));
            }
            else
            {
                owned.Add((run.Start, run.End));
            }

            if (furthest is not { } g || run.End > g.End)
            {
                furthest = run;
            }
        }

        return owned;
    }

    /// <summary>How many blocks of [start, end) the disjoint sorted intervals cover.</summary>
    private static long Covered(List<(long Start, long End)> owned, long start, long end)
    {
        int i = owned.BinarySearch((start, long.MaxValue), Comparer<(long Start, long End)>.Create((x, y) => x.Start.CompareTo(y.Start)));
        i = i < 0 ? Math.Max(0, ~i - 1) : i;
        long covered = 0;
        for (; i < owned.Count && owned[i].Start < end; i++)
        {
            covered += Math.Max(0, Math.Min(end, owned[i].End) - Math.Max(start, owned[i].Start));
        }

        return covered;
    }
}
