using System.Diagnostics;
using System.Globalization;
using BlockOverlay.Engine.Tests.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Checking;

namespace BlockOverlay.Engine.Tests.Torture;

/// <summary>
/// <c>make torture</c>, simulated half: the power-loss driver of <see cref="InstancePowerLossTests"/>
/// over many seeds, with instance churn — delete + create (the workload's re-create) and an instance
/// replaced by a clone of another. Every crash image is checked by <see cref="StoreChecker"/> as
/// the power cut left it, then opened and held against the models (every flushed write there, no
/// other instance's bytes); every seed ends with a clean close and a clean check. A crash image
/// is abandoned after its check, so a failing one is counted and the seed goes on (one run shows
/// every class that fails); a failure of the live workload ends its seed. Failing seeds are
/// named, the summary counts each class of failure.
/// </summary>
[TestFixture]
[Category("Torture")]
public sealed class SimulatedTortureTests
{
    private const int BaseSize = (300 << 10) + 1234;

    // Two pairs of one size each: a clone replaces an instance of its source's size.
    private static readonly (string, long)[] Instances = [("alpha", 512 << 10), ("beta", 512 << 10), ("gamma", 768 << 10), ("delta", 768 << 10)];

    private static int PointsPerSeed => TortureSettings.Read("BLOCKOVERLAY_TORTURE_POINTS", 400);

    [Test]
    public async Task Power_cuts_over_random_multi_instance_workloads_with_create_delete_and_clone()
    {
        var watch = Stopwatch.StartNew();
        var totals = new TortureTally();
        var failures = new List<string>();
        for (int seed = TortureSettings.FirstSeed; seed < TortureSettings.FirstSeed + TortureSettings.Seeds && watch.Elapsed < TortureSettings.Budget; seed++)
        {
            var found = await RunSeedAsync(seed, totals);
            totals.Iterations++;
            if (found.Count > 0)
            {
                failures.Add($"seed {seed} (make torture SEED={seed} SEEDS=1): {found.Count} failures, the first: {found[0]}");
            }
        }

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"torture (simulated power loss): {totals.Iterations} iterations (seeds {TortureSettings.FirstSeed}..{TortureSettings.FirstSeed + totals.Iterations - 1}), " +
            $"{totals.CrashPoints} crash points ({totals.MidOperation} mid-operation, {totals.Between} between operations), " +
            $"{totals.Operations} operations ({totals.Clones} clones, {totals.Recreates} delete+create), {totals.Checks} store checks, " +
            $"lost flushed writes {totals.Lost}, cross-instance leaks {totals.Leaks}, check problems {totals.CheckProblems}, " +
            $"re-created or cloned instances not whole {totals.NotWhole}, " +
            $"other failures {totals.Other}, failed seeds {failures.Count}, {watch.Elapsed.TotalSeconds:F0} s");
        Console.WriteLine(summary);
        TestReport.Write(summary);
        await TestContext.Out.WriteLineAsync(summary);
        Assert.That(failures, Is.Empty, () => summary + "\n" + string.Join("\n", failures));
    }

    /// <summary>One seed: returns what failed, in order.</summary>
    private static async Task<List<string>> RunSeedAsync(int seed, TortureTally totals)
    {
        var rng = new Random(seed);
        var crashRng = new Random(seed * 7919);
        var churn = new Random(seed * 104729);
        using var testBase = await TestBase.CreateAsync(seed, BaseSize);
        InstanceWorkload? workload = null;
        var found = new List<string>();
        int tested = 0;
        long metadataBytes = 0;
        bool ShouldCrash(long offset) => crashRng.Next(100) < (offset < metadataBytes ? 60 : 12);

        async Task OnCrash(CrashImage c)
        {
            if (workload is null)
            {
                return;
            }

            tested++;
            string context = $"seed {seed}, crash point {tested}: power cut at device write {c.WriteIndex} " +
                $"({c.Length} bytes at byte {c.Offset}; the write in flight {c.Fate}) during {workload.Describe(workload.Op)}";
            if ((await CheckImageAsync(c.Image, context, totals) ?? await RecoverAsync(workload, c.Image, context, totals)) is { } bad)
            {
                found.Add(bad);
            }
        }

        await using var media = new PowerLossMedia(16 << 20, crashRng, ShouldCrash, OnCrash);
        try
        {
            await using (workload = await InstanceWorkload.CreateAsync(testBase, media, rng, ContentMode.Stamped, journalBlocks: seed % 2 == 0 ? 16 : 64, Instances))
            {
                metadataBytes = workload.MetadataBytes;
                media.Armed = true;
                while (tested + workload.Counts.GetValueOrDefault("kill-reopen") < PointsPerSeed)
                {
                    await StepAsync(workload, churn);
                }

                await workload.VerifyAllAsync("at the end");
                media.Armed = false;
                await workload.CloseAsync();
                if (await CheckImageAsync(media.Device, $"seed {seed}: after the clean close", totals) is { } bad)
                {
                    found.Add(bad);
                }
            }
        }
        catch (AssertionException e)
        {
            found.Add(Classify(e.Message, totals)); // the live workload failed: this seed ends here
        }

        int kills = workload?.Counts.GetValueOrDefault("kill-reopen") ?? 0;
        totals.MidOperation += tested;
        totals.Between += kills;
        totals.Operations += workload?.Op ?? 0;
        totals.Clones += workload?.Counts.GetValueOrDefault("clone-over") ?? 0;
        totals.Recreates += workload?.Counts.GetValueOrDefault("recreate") ?? 0;
        return found;
    }

    /// <summary>Mostly the workload's own step; now and then an instance replaced by a clone of its same-sized sibling.</summary>
    private static Task StepAsync(InstanceWorkload workload, Random churn)
    {
        if (churn.Next(100) >= 2)
        {
            return workload.StepAsync();
        }

        int pair = churn.Next(2) * 2, first = churn.Next(2);
        return workload.CloneOverAsync(workload.Models[pair + first], workload.Models[pair + 1 - first]);
    }

    /// <summary>The checker over a crash image as the power cut left it, or over the closed store.</summary>
    private static async Task<string?> CheckImageAsync(IBlockDevice device, string context, TortureTally totals)
    {
        totals.Checks++;
        var report = await StoreChecker.CheckAsync(device);
        if (report.Clean)
        {
            return null;
        }

        totals.CheckProblems += report.Problems.Sum(p => p.Count);
        return $"{context}: store check found problems: " + string.Join(" | ", report.Problems.Select(p => $"{p.Count} x {p.Class.Title}: {string.Join("; ", p.Examples)}"));
    }

    private static async Task<string?> RecoverAsync(InstanceWorkload workload, IBlockDevice image, string context, TortureTally totals)
    {
        try
        {
            _ = await workload.CheckRecoveredAsync(image, context, adopt: false); // abandoned, like the process that crashed
            return null;
        }
        catch (AssertionException e)
        {
            return Classify(e.Message, totals);
        }
        catch (Exception e)
        {
            totals.Other++;
            return $"{context}: {e}";
        }
    }

    /// <summary>Counts a model failure by what the block read: another instance's stamp is a leak, else a lost write.</summary>
    private static string Classify(string message, TortureTally totals)
    {
        string actual = message.Split("\n  actual: ") is [_, var rest, ..] ? rest.Split('\n')[0] : "";
        if (actual.Contains("OF INSTANCE", StringComparison.Ordinal))
        {
            totals.Leaks++;
        }
        else if (message.Contains("neither the base's nor its clone source's", StringComparison.Ordinal))
        {
            totals.NotWhole++;
        }
        else if (message.Contains("reads content it never had", StringComparison.Ordinal) || message.Contains("differs from the model", StringComparison.Ordinal))
        {
            totals.Lost++;
        }
        else
        {
            totals.Other++;
        }

        return message;
    }

    private sealed class TortureTally
    {
        public int Iterations { get; set; }

        public long MidOperation { get; set; }

        public long Between { get; set; }

        public long CrashPoints => MidOperation + Between;

        public long Operations { get; set; }

        public long Clones { get; set; }

        public long Recreates { get; set; }

        public long Checks { get; set; }

        public long Lost { get; set; }

        public long Leaks { get; set; }

        public long CheckProblems { get; set; }

        public long NotWhole { get; set; }

        public long Other { get; set; }
    }
}
