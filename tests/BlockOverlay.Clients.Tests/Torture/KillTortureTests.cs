using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Torture;

/// <summary>
/// <c>make torture</c>, real half: <c>bin/blockoverlay serve</c> killed with SIGKILL again and
/// again while one nbdsh (libnbd) writer per instance writes and flushes (<see cref="KillTortureModel"/>).
/// After each kill: <c>store check</c> must report a clean store; the restarted server must show
/// every instance with every flushed block and none of another instance's; then, stopped cleanly,
/// an instance is deleted and created again or replaced by a clone of another (the CLI, offline),
/// and the store checked again. Seeds make the timing and churn reproducible as far as a real
/// process allows; a failure names its seed, the summary counts each class of failure.
/// </summary>
[TestFixture]
[Category("Torture")]
[NonParallelizable]
public sealed partial class KillTortureTests
{
    private const int Instances = 4;
    private const string InstanceSize = "8M";
    private const long BlocksPerInstance = (8 << 20) / KillTortureModel.Block;
    private const int BaseSize = 6 << 20; // shorter than the instances: their tail reads zeros

    private static int CyclesPerSeed => TortureSettings.Read("BLOCKOVERLAY_TORTURE_KILLS", 4);

    [Test]
    public void Kill_9_under_several_libnbd_writers_on_several_instances_loses_no_flushed_write_and_leaks_nothing()
    {
        var watch = Stopwatch.StartNew();
        var tally = new Tally();
        var failures = new List<string>();
        for (int seed = TortureSettings.FirstSeed; seed < TortureSettings.FirstSeed + TortureSettings.Seeds && watch.Elapsed < TortureSettings.Budget; seed++)
        {
            tally.Iterations++;
            try
            {
                RunSeed(seed, tally);
            }
            catch (AssertionException e)
            {
                failures.Add($"seed {seed} (make torture SEED={seed} SEEDS=1): {e.Message}");
            }
        }

        string summary = string.Create(CultureInfo.InvariantCulture,
            $"torture (kill -9 of the server): {tally.Iterations} iterations (seeds {TortureSettings.FirstSeed}..{TortureSettings.FirstSeed + tally.Iterations - 1}), " +
            $"{tally.Kills} kill cycles, {tally.Writers} writer runs, {tally.FlushedRounds} flushed rounds, {tally.Churns} instance churns, " +
            $"{tally.Checks} store checks, lost flushed writes {tally.Lost}, cross-instance leaks {tally.Leaks}, check problems {tally.CheckProblems}, " +
            $"failed seeds {failures.Count}, {watch.Elapsed.TotalSeconds:F0} s");
        Console.WriteLine(summary);
        TestContext.Out.WriteLine(summary);
        if (Environment.GetEnvironmentVariable("BLOCKOVERLAY_TEST_REPORT") is { Length: > 0 } report)
        {
            File.AppendAllText(report, summary + Environment.NewLine);
        }

        Assert.That(failures, Is.Empty, () => summary + "\n" + string.Join("\n", failures));
    }

    private static void RunSeed(int seed, Tally tally)
    {
        var rng = new Random(seed);
        using var ws = new StoreWorkspace();
        ws.CreateStore("256M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed);
        var initial = new byte[BlocksPerInstance * KillTortureModel.Block];
        baseImage.CopyTo(initial, 0);
        var models = new byte[Instances][];
        for (int i = 0; i < Instances; i++)
        {
            ws.CreateInstance(Name(i), ws["base.raw"], InstanceSize);
            models[i] = initial.ToArray();
        }

        for (int cycle = 0; cycle < CyclesPerSeed; cycle++)
        {
            string where = $"seed {seed}, kill cycle {cycle}";
            int perRound = 1 + rng.Next(24);
            var rounds = KillDuringWrites(ws, seed * 100 + cycle, perRound, TimeSpan.FromMilliseconds(100 + rng.Next(1500)), where);
            tally.Kills++;
            tally.Writers += Instances;
            tally.FlushedRounds += rounds.Sum(r => r + 1);
            Check(ws, tally, $"{where}, after the kill");
            VerifyAfterRestart(ws, models, seed * 100 + cycle, perRound, rounds, tally, where);
            Churn(ws, models, initial, rng, tally);
            Check(ws, tally, $"{where}, after the churn");
        }
    }

    /// <summary>Serves the store, starts a writer per instance, kills the server after <paramref name="delay"/>; returns each writer's last flushed round.</summary>
    private static int[] KillDuringWrites(StoreWorkspace ws, int tag, int perRound, TimeSpan delay, string where)
    {
        using var server = StoreServer.Start(ws);
        var writers = Enumerable.Range(0, Instances)
            .Select(i => StoreNbdsh.Start(server, KillTortureModel.Script(Name(i), i, tag, perRound, BlocksPerInstance)))
            .ToList();
        try
        {
            foreach (var writer in writers)
            {
                writer.WaitForLine("round 0", TimeSpan.FromSeconds(30)); // every writer is under way
            }

            Thread.Sleep(delay);
            server.Kill();
        }
        finally
        {
            foreach (var writer in writers)
            {
                writer.Dispose(); // waits for its exit, so every line it printed is in
            }
        }

        TestContext.Out.WriteLine($"{where}: killed after {delay.TotalMilliseconds} ms");
        return writers.Select(w => w.LastRound()).ToArray();
    }

    /// <summary><c>store check</c> of the unserved store: exit 0, or the problems it counts are failures.</summary>
    private static void Check(StoreWorkspace ws, Tally tally, string where)
    {
        tally.Checks++;
        var result = StoreWorkspace.Cli("store", "check", ws.StorePath);
        if (result.ExitCode == 0)
        {
            return;
        }

        var counted = ProblemCount().Match(result.Stdout);
        tally.CheckProblems += counted.Success ? long.Parse(counted.Groups[1].Value, CultureInfo.InvariantCulture) : 1;
        Assert.Fail($"{where}: store check is not clean\n{result}");
    }

    /// <summary>Restarts the server and holds each instance against its model; what it read becomes the model.</summary>
    private static void VerifyAfterRestart(StoreWorkspace ws, byte[][] models, int tag, int perRound, int[] rounds, Tally tally, string where)
    {
        using var server = StoreServer.Start(ws);
        var bad = new List<string>();
        for (int i = 0; i < Instances; i++)
        {
            var durable = models[i];
            for (int r = 0; r <= rounds[i]; r++)
            {
                foreach (long b in KillTortureModel.RoundBlocks(i, tag, r, perRound, BlocksPerInstance))
                {
                    KillTortureModel.Content(i, tag, r, b).CopyTo(durable, b * KillTortureModel.Block);
                }
            }

            var next = KillTortureModel.RoundBlocks(i, tag, rounds[i] + 1, perRound, BlocksPerInstance).ToHashSet();
            var actual = ExportContent.CopyOut(server, ws, Name(i));
            Assert.That(actual, Has.Length.EqualTo(durable.Length), $"{where}: size of {Name(i)}");
            for (long b = 0; b < BlocksPerInstance; b++)
            {
                var got = actual.AsSpan((int)(b * KillTortureModel.Block), KillTortureModel.Block);
                if (got.SequenceEqual(durable.AsSpan((int)(b * KillTortureModel.Block), KillTortureModel.Block))
                    || (next.Contains(b) && got.SequenceEqual(KillTortureModel.Content(i, tag, rounds[i] + 1, b))))
                {
                    continue;
                }

                bool leak = KillTortureModel.Writer(got) is { } writer && writer != i;
                if (leak)
                {
                    tally.Leaks++;
                }
                else
                {
                    tally.Lost++;
                }

                bad.Add($"{Name(i)} block {b} ({(leak ? "another instance's" : "not its flushed content")}): reads {KillTortureModel.Describe(got)}, " +
                    $"expected {KillTortureModel.Describe(durable.AsSpan((int)(b * KillTortureModel.Block), KillTortureModel.Block))}");
            }

            actual.CopyTo(durable, 0);
        }

        Assert.That(server.Terminate(), Is.Zero, server.ToString);
        Assert.That(bad, Is.Empty, $"{where}: writers' last flushed rounds [{string.Join(", ", rounds)}], blocks per round {perRound}");
    }

    /// <summary>Offline, with the server stopped: none, a delete + create, or an instance replaced by a clone of another.</summary>
    private static void Churn(StoreWorkspace ws, byte[][] models, byte[] initial, Random rng, Tally tally)
    {
        int target = rng.Next(Instances), source = (target + 1 + rng.Next(Instances - 1)) % Instances;
        switch (rng.Next(3))
        {
            case 0:
                return;
            case 1:
                StoreWorkspace.CliOk("instance", "delete", Name(target), "--store", ws.StorePath);
                ws.CreateInstance(Name(target), ws["base.raw"], InstanceSize);
                models[target] = initial.ToArray();
                break;
            default:
                StoreWorkspace.CliOk("instance", "delete", Name(target), "--store", ws.StorePath);
                StoreWorkspace.CliOk("instance", "clone", Name(source), Name(target), "--store", ws.StorePath);
                models[target] = models[source].ToArray();
                break;
        }

        tally.Churns++;
    }

    private static string Name(int instance) => $"tenant{instance}";

    [GeneratedRegex(@": (\d+) problems? found")]
    private static partial Regex ProblemCount();

    private sealed class Tally
    {
        public int Iterations { get; set; }

        public long Kills { get; set; }

        public long Writers { get; set; }

        public long FlushedRounds { get; set; }

        public long Churns { get; set; }

        public long Checks { get; set; }

        public long Lost { get; set; }

        public long Leaks { get; set; }

        public long CheckProblems { get; set; }
    }
}
