using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Checking;

/// <summary>
/// The store checker (<c>blockoverlay store check</c>): verifies a whole store at rest and
/// reports every problem, counted per class (<see cref="StoreProblemKind"/>), instead of
/// refusing at the first as opening does.
/// </summary>
/// <remarks>
/// <para>
/// <b>Steps.</b> Both superblock copies (<see cref="SuperblockCheck"/>); the checkpoint, the
/// journal and the instance definitions, with every map entry checked as it is applied
/// (<see cref="MetadataCheck"/>, which reads them with recovery's own code); then ownership
/// of every store block (<see cref="OwnershipCheck"/>).
/// </para>
/// <para>
/// <b>Reads only.</b> <see cref="CheckAsync"/> never writes, and never opens the store (which
/// would mark it in use): a file store is opened read-only under a shared lock, so a server
/// holding it refuses the check and the check never sees a store that is changing.
/// </para>
/// <para>
/// <b>Repair</b> (<see cref="RepairAsync"/>) fixes only what needs no guess: a damaged or stale
/// superblock copy is rewritten from the one the store opens with; leaked blocks, which
/// recovery frees anyway, are dropped by opening the store and closing it cleanly, and only
/// when nothing else is wrong (the store would not open). Everything else is left, with why.
/// </para>
/// </remarks>
public static class StoreChecker
{
    /// <summary>Checks the store on <paramref name="device"/>, reading only.</summary>
    /// <exception cref="StoreFormatException">The device holds no store at all (neither copy has the superblock's magic).</exception>
    public static async Task<CheckReport> CheckAsync(IBlockDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        return (await RunAsync(device)).Report;
    }

    /// <summary>Checks, repairs what can be repaired without guessing, and checks again.</summary>
    public static async Task<RepairReport> RepairAsync(IBlockDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        var (found, copies) = await RunAsync(device);
        var done = new List<string>();
        var refused = new List<string>();
        var left = new List<ProblemCount>();
        foreach (var problem in found.Problems)
        {
            switch (problem.Class.Kind)
            {
                case StoreProblemKind.DamagedSuperblockCopy or StoreProblemKind.StaleSuperblockCopy:
                    break; // both are the other copy: one rewrite below
                case StoreProblemKind.LeakedBlocks:
                    break; // below, once the rest is known
                default:
                    left.Add(problem);
                    refused.Add($"{problem.Class.Title} ({problem.Count}): not touched: {problem.Class.Remedy}");
                    break;
            }
        }

        // A copy torn by a crash is no problem, but it is rewritten too: then both copies are good.
        if (copies.Newest is not null && (copies.A is null || copies.B is null || found.Count(StoreProblemKind.StaleSuperblockCopy) > 0))
        {
            await RewriteOtherCopyAsync(device, copies, done, refused);
        }

        if (found.Count(StoreProblemKind.LeakedBlocks) is var leaks and > 0)
        {
            if (left.Count == 0)
            {
                await using (await UpperStore.OpenAsync(device))
                {
                }

                done.Add($"leaked blocks ({leaks}): the store was opened, which freed them, and closed cleanly: " +
                         "its closing checkpoint no longer names them");
            }
            else
            {
                refused.Add($"leaked blocks ({leaks}): left: they are free whenever the store opens, but it cannot be opened to drop them " +
                            "while the problems above remain");
            }
        }

        return new RepairReport(found, done, refused, await CheckAsync(device));
    }

    private static async Task<(CheckReport Report, SuperblockCopies Copies)> RunAsync(IBlockDevice device)
    {
        var log = new CheckLog();
        var copies = await SuperblockCheck.RunAsync(device, log);
        if (copies.Newest is { } superblock && await MetadataCheck.RunAsync(device, superblock, log) is { } maps)
        {
            OwnershipCheck.Run(superblock, maps, log);
        }

        return (log.Report(), copies);
    }

    /// <summary>
    /// Writes the newest copy's fields as the next generation, which goes to the other block (as
    /// every superblock write does), so the store opens with the same fields from either copy.
    /// </summary>
    private static async Task RewriteOtherCopyAsync(IBlockDevice device, SuperblockCopies copies, List<string> done, List<string> refused)
    {
        var newest = copies.Newest!;
        if (newest.CopyBlock != copies.NewestBlock)
        {
            refused.Add($"superblock: not rewritten: the newest copy (generation {newest.Generation}) is in the block of the other " +
                        "generation, so which block holds what cannot be trusted");
            return;
        }

        var rewritten = newest with { Generation = newest.Generation + 1 };
        await SuperblockPublisher.WriteAsync(device, rewritten);
        done.Add($"superblock {SuperblockCopies.Name(rewritten.CopyBlock)}: rewritten from {SuperblockCopies.Name(copies.NewestBlock)} " +
                 $"with the same fields, as generation {rewritten.Generation}");
    }
}
