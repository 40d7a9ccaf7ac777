using System.Diagnostics;
using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Soak;

/// <summary>
/// <c>make soak DURATION=s</c>: one <c>bin/blockoverlay serve</c> under many tenants for a long
/// time. 64 instances (BLOCKOVERLAY_SOAK_INSTANCES) of one base, each with 2 libnbd
/// connections (BLOCKOVERLAY_SOAK_CONNECTIONS) doing random writes (some FUA), reads checked
/// against a byte model, flushes and write-zeroes; every 2 s an instance is deleted and
/// created again through the running server (its connections leave first, and come back).
/// The server's memory, threads and open files are sampled every 2 s.
/// <para>
/// It passes when nothing went wrong and nothing grew: no client error, no read that differs
/// from the model (one that carries another tenant's stamp is counted as a leak), memory
/// flat — the peak RSS of the second half at most the first half's peak plus 10 % or 32 MiB,
/// whichever is more (the first half holds the warm-up: the cache filling to its limit) —
/// and the same rule for threads and open files; then, after a clean stop, <c>store
/// check</c> is clean and a restarted server holds every instance's model byte for byte.
/// </para>
/// </summary>
[TestFixture]
[Category("Soak")]
[NonParallelizable]
public sealed class SoakTests
{
    private const string InstanceSize = "8M";
    private const int InstanceBytes = 8 << 20;
    private const int BaseBytes = 4 << 20; // shorter than the instances: their tail reads zeros
    private static readonly TimeSpan SampleEvery = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ChurnEvery = TimeSpan.FromSeconds(2);

    private static int Seconds => Setting("BLOCKOVERLAY_SOAK_SECONDS", 60);

    private static int Instances => Setting("BLOCKOVERLAY_SOAK_INSTANCES", 64);

    private static int Connections => Setting("BLOCKOVERLAY_SOAK_CONNECTIONS", 2);

    private static int Seed => Setting("BLOCKOVERLAY_SOAK_SEED", 1);

    [Test]
    public void Many_tenants_for_a_long_time_see_only_their_own_data_and_the_server_does_not_grow()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("2G");
        var baseImage = ws.WriteRandomFile("base.raw", BaseBytes, Seed);
        var initial = new byte[InstanceBytes];
        baseImage.CopyTo(initial, 0);
        var tenants = Enumerable.Range(0, Instances)
            .Select(i => new SoakTenant(i, Instances, $"soak{i}", initial, Connections))
            .ToList();
        foreach (var tenant in tenants)
        {
            ws.CreateInstance(tenant.Name, ws["base.raw"], InstanceSize);
        }

        var tally = new SoakTally();
        var samples = new List<Sample>();
        var watch = Stopwatch.StartNew();
        using (var server = StoreServer.Start(ws))
        {
            using var stop = new CancellationTokenSource();
            var connections = tenants
                .SelectMany(t => Enumerable.Range(0, Connections).Select(c => StartThread(
                    $"soak {t.Name}/{c}", () => t.RunConnection(c, server.UnixUri(t.Name), Seed * 100_000 + t.Number * 16 + c, tally, stop.Token))))
                .ToList();
            try
            {
                Drive(ws, server, tenants, initial, tally, samples, watch);
            }
            finally
            {
                // The clients leave before the server does, whatever happened: libnbd 1.14
                // asserts (and takes the test host with it) when a server vanishes under a busy handle.
                stop.Cancel();
                foreach (var thread in connections)
                {
                    Assert.That(thread.Join(TimeSpan.FromSeconds(60)), Is.True, $"{thread.Name} did not stop within 60 s\n{server}");
                }
            }

            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        var check = StoreWorkspace.Cli("store", "check", ws.StorePath);
        var unlike = ReadBack(ws, tenants);
        var memory = Growth.Of(samples, s => s.RssBytes, floor: 32L << 20);
        var threads = Growth.Of(samples, s => s.Threads, floor: 4);
        var files = Growth.Of(samples, s => s.OpenFiles, floor: 8);
        string summary = string.Create(CultureInfo.InvariantCulture,
            $"soak: {watch.Elapsed.TotalSeconds:F0} s, {Instances} instances x {Connections} connections, seed {Seed}: " +
            $"{tally.Operations} operations ({tally.Writes.Value} writes, {tally.Reads.Value} checked reads, {tally.Flushes.Value} flushes, " +
            $"{tally.Zeroes.Value} write-zeroes), {tally.BytesWritten.Value >> 20} MiB written, {tally.Connects.Value} connects, " +
            $"{tally.Churns.Value} delete+create; errors {tally.Errors.Value}, wrong reads {tally.Mismatches.Value} (another tenant's {tally.Leaks.Value}); " +
            $"RSS MiB {memory.Describe(1 << 20)}, threads {threads.Describe(1)}, open files {files.Describe(1)}; " +
            $"store check exit {check.ExitCode}; instances unlike their model after restart {unlike.Count}");
        Console.WriteLine(summary);
        TestContext.Out.WriteLine(summary);
        TestContext.Out.WriteLine("samples (s, RSS MiB, threads, open files): " +
            string.Join("; ", samples.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.At.TotalSeconds:F0} {s.RssBytes >> 20} {s.Threads} {s.OpenFiles}"))));
        if (Environment.GetEnvironmentVariable("BLOCKOVERLAY_TEST_REPORT") is { Length: > 0 } report)
        {
            File.AppendAllText(report, summary + Environment.NewLine);
        }

        string problems = summary + "\n" + string.Join("\n", tally.Problems.Concat(unlike));
        Assert.Multiple(() =>
        {
            Assert.That(tally.Errors.Value + tally.Mismatches.Value, Is.Zero, problems);
            Assert.That(memory.Flat, Is.True, "memory grew: " + problems);
            Assert.That(threads.Flat, Is.True, "threads grew: " + problems);
            Assert.That(files.Flat, Is.True, "open files grew: " + problems);
            Assert.That(check.ExitCode, Is.Zero, () => $"store check: {check}");
            Assert.That(unlike, Is.Empty, problems);
            Assert.That(tally.Churns.Value, Is.GreaterThan(0), "no instance was churned: the run was too short to mean anything");
        });
    }

    /// <summary>Until the run's time is up or something went wrong: samples the server and churns an instance now and then.</summary>
    private static void Drive(StoreWorkspace ws, StoreServer server, List<SoakTenant> tenants, byte[] initial,
        SoakTally tally, List<Sample> samples, Stopwatch watch)
    {
        var rng = new Random(Seed);
        var nextChurn = ChurnEvery;
        var nextSample = TimeSpan.Zero;
        while (watch.Elapsed < TimeSpan.FromSeconds(Seconds) && tally.Errors.Value == 0 && tally.Mismatches.Value == 0)
        {
            if (watch.Elapsed >= nextSample)
            {
                samples.Add(Sample.Of(server.ProcessId, watch.Elapsed));
                nextSample += SampleEvery;
            }

            if (watch.Elapsed >= nextChurn)
            {
                Churn(ws, tenants[rng.Next(tenants.Count)], initial, tally);
                nextChurn += ChurnEvery;
            }

            Thread.Sleep(50);
        }

        samples.Add(Sample.Of(server.ProcessId, watch.Elapsed));
    }

    /// <summary>Deletes the tenant's instance through the running server and creates it again, its connections held off meanwhile.</summary>
    private static void Churn(StoreWorkspace ws, SoakTenant tenant, byte[] initial, SoakTally tally)
    {
        tenant.Pause(TimeSpan.FromSeconds(30));
        var deleted = StoreWorkspace.Cli("instance", "delete", tenant.Name, "--force", "--store", ws.StorePath);
        var created = deleted.ExitCode == 0
            ? StoreWorkspace.Cli("instance", "create", tenant.Name, "--base", ws["base.raw"], "--size", InstanceSize, "--store", ws.StorePath)
            : deleted;
        if (created.ExitCode != 0)
        {
            tally.Error($"churn of {tenant.Name}: {created}"); // ends the run: its model no longer says anything
            return;
        }

        tally.Churns.Add(1);
        tenant.Resume(initial);
    }

    /// <summary>Serves the store again and names every instance whose bytes are not its model's.</summary>
    private static List<string> ReadBack(StoreWorkspace ws, IReadOnlyList<SoakTenant> tenants)
    {
        var unlike = new List<string>();
        using var server = StoreServer.Start(ws);
        var bytes = new byte[InstanceBytes];
        foreach (var tenant in tenants)
        {
            using var client = new LibNbd.NbdClient();
            client.ConnectUri(server.UnixUri(tenant.Name));
            client.Pread(bytes, 0);
            if (ExportContent.FirstDifference(bytes, tenant.Model.ToArray()) is { } difference)
            {
                unlike.Add($"{tenant.Name} after restart: {difference}");
            }

            client.Shutdown();
        }

        Assert.That(server.Terminate(), Is.Zero, server.ToString);
        return unlike;
    }

    private static Thread StartThread(string name, Action body)
    {
        var thread = new Thread(() => body()) { Name = name, IsBackground = true };
        thread.Start();
        return thread;
    }

    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0 ? n : fallback;

    /// <summary>The server's size at one moment, from /proc.</summary>
    private sealed record Sample(TimeSpan At, long RssBytes, long Threads, long OpenFiles)
    {
        public static Sample Of(int pid, TimeSpan at)
        {
            long rss = 0, threads = 0;
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = Field(line) * 1024; // kB
                }
                else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                {
                    threads = Field(line);
                }
            }

            return new Sample(at, rss, threads, Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length);
        }

        private static long Field(string line) =>
            long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }

    /// <summary>The peaks of the first and second half of a run, and whether the second stayed within the first's plus a margin.</summary>
    private sealed record Growth(long FirstPeak, long SecondPeak, long Margin)
    {
        public bool Flat => SecondPeak <= FirstPeak + Margin;

        public static Growth Of(IReadOnlyList<Sample> samples, Func<Sample, long> value, long floor)
        {
            int half = samples.Count / 2;
            long first = samples.Take(Math.Max(half, 1)).Max(value);
            long second = samples.Skip(half).Max(value);
            return new Growth(first, second, Math.Max(floor, first / 10));
        }

        public string Describe(long unit) => string.Create(CultureInfo.InvariantCulture,
            $"peak {FirstPeak / unit} then {SecondPeak / unit} (allowed +{Margin / unit})");
    }
}
