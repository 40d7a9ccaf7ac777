using System.Diagnostics;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Nbd.Tests.Server;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>What a run saw; every failure names the seed that reproduces it.</summary>
/// <remarks>
/// The fuzzer, its steady client and the server share one process, so the process's own pauses
/// are reported beside them: a hang with seconds of GC pause is first a question about the fuzzer.
/// </remarks>
internal sealed record FuzzReport(long Cases, long Inputs, long Connections, long Crashes, long Hangs, long WrongReplies, long Leaks,
    long SteadyErrors, double SteadyP99Ms, long SteadyOperations, TimeSpan GcPause, IReadOnlyList<string> Failures)
{
    public override string ToString() =>
        $"fuzz: {Cases} cases, {Inputs} inputs, {Connections} connections; {Crashes} crashes, {Hangs} hangs, " +
        $"{WrongReplies} wrong replies, {Leaks} leaks; steady client {SteadyOperations} ops, {SteadyErrors} errors, p99 {SteadyP99Ms:F1} ms; " +
        $"the test process's GC pauses {GcPause.TotalSeconds:F1} s";
}

/// <summary>
/// The NBD protocol fuzzer: one in-process server on a unix socket; cases run one after another,
/// each generated from its own seed (so a failing case is reproduced by that seed alone). A case
/// is a few concurrent fuzz connections, sometimes a burst of many. After each case the oracles:
/// nothing logged at Error (a bug), no hang, no wrong reply, and the server back to its idle level
/// (only the steady client's connection open, no request buffer bytes held). Beside the cases a
/// steady, well-behaved client writes and reads back all the time; its errors and p99 latency are
/// the "others keep being served" oracle.
/// </summary>
internal sealed class FuzzRun : IAsyncDisposable
{
    private const int Writable = 6;
    private const int ExportSize = 256 * 1024;
    private const int KeptPerClass = 20;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(5); // under the server's handshake limit (10 s)

    private readonly string _directory = Directory.CreateTempSubdirectory("blockoverlay-fuzz-").FullName;
    private readonly TestServer _server;
    private readonly ExportModel[] _models = Enumerable.Range(0, Writable).Select(_ => new ExportModel(ExportSize)).ToArray();
    private readonly ExportModel _readOnlyModel = new(ExportSize);
    private readonly List<string> _failures = [];
    private long _inputs, _connections, _crashes, _hangs, _wrong, _leaks;

    public FuzzRun()
    {
        string image = Path.Combine(_directory, "ro.img");
        File.WriteAllBytes(image, new byte[ExportSize]);
        var exports = Enumerable.Range(0, Writable).Select(i => ($"f{i}", (IExport)new MemoryExport(ExportSize)))
            .Append(("ro", FileExport.Open(image, readOnly: true)))
            .Append((SteadyClient.Export, new MemoryExport(SteadyClient.Size)));
        _server = new TestServer(exports.ToArray());
    }

    /// <summary>Runs cases <paramref name="firstSeed"/>, +1, ... until <paramref name="maxCases"/> or <paramref name="duration"/>.</summary>
    public async Task<FuzzReport> RunAsync(int firstSeed, long maxCases, TimeSpan duration)
    {
        var clock = Stopwatch.StartNew();
        var pausedBefore = GC.GetTotalPauseDuration();
        using var stop = new CancellationTokenSource();
        var steady = new SteadyClient(_server.SocketPath, Bound);
        var steadyRun = steady.RunAsync(stop.Token);
        long cases = 0;
        for (int seed = firstSeed; cases < maxCases && clock.Elapsed < duration; seed++, cases++)
        {
            await RunCaseAsync(seed);
        }

        await stop.CancelAsync();
        await steadyRun;
        await CheckIdleAsync("the end of the run", expectedOpen: 0);
        CheckLog("the end of the run");
        return new FuzzReport(cases, _inputs, _connections, _crashes, _hangs, _wrong, _leaks,
            steady.Errors, steady.P99Milliseconds, steady.Operations, GC.GetTotalPauseDuration() - pausedBefore, _failures);
    }

    private async Task RunCaseAsync(int seed)
    {
        var random = new Random(seed);
        int count = random.Next(1, 5);
        var connections = Enumerable.Range(0, count)
            .Select(i => random.Next(5) == 0 ? ("ro", _readOnlyModel) : ($"f{i}", _models[i]))
            .Select(target => RunConnectionAsync(seed, new Random(random.Next()), target.Item1, target.Item2))
            .ToList();
        if (random.Next(8) == 0)
        {
            // Many at once: a burst on the read-only export, where no two can disagree about the bytes.
            connections.AddRange(Enumerable.Range(0, random.Next(16, 64))
                .Select(_ => RunConnectionAsync(seed, new Random(random.Next()), "ro", _readOnlyModel)));
        }

        var all = Task.WhenAll(connections);
        if (await Task.WhenAny(all, Task.Delay(Bound * 3)) != all)
        {
            Fail(ref _hangs, seed, "the case did not finish within its bound");
            await all;
        }

        await CheckIdleAsync($"seed {seed}", expectedOpen: 1, seed);
        CheckLog($"seed {seed}", seed);
    }

    private async Task RunConnectionAsync(int seed, Random random, string export, ExportModel model)
    {
        Interlocked.Increment(ref _connections);
        var tally = new FuzzTally();
        try
        {
            using var wire = await FuzzWire.ConnectAsync(_server.SocketPath, Bound);
            var negotiated = await new FuzzHandshake(random, wire, export, tally).RunAsync();
            if (negotiated is not null)
            {
                await new FuzzTransmission(random, wire, negotiated, model, tally).RunAsync();
            }
        }
        catch (HangException e)
        {
            Fail(ref _hangs, seed, $"{export}: {e.Message}");
        }
        catch (WrongReplyException e)
        {
            Fail(ref _wrong, seed, $"{export}: {e.Message}");
        }
        finally
        {
            Interlocked.Add(ref _inputs, tally.Inputs);
        }
    }

    /// <summary>Waits (bounded) for the server to hold no request buffer and only the steady client's connection.</summary>
    private async Task CheckIdleAsync(string when, int expectedOpen, int seed = -1)
    {
        var clock = Stopwatch.StartNew();
        while (_server.Counters.ConnectionsOpen > expectedOpen || _server.Counters.RequestBufferBytes != 0)
        {
            if (clock.Elapsed > Bound)
            {
                Fail(ref _leaks, seed, $"after {when}: {_server.Counters.ConnectionsOpen} connections open, " +
                    $"{_server.Counters.RequestBufferBytes} request buffer bytes held");
                return;
            }

            await Task.Delay(5);
        }
    }

    /// <summary>A line logged at Error or Critical is a bug the server caught: a crash for the fuzzer.</summary>
    private void CheckLog(string when, int seed = -1)
    {
        while (_server.Log.TryDequeue(out string? line))
        {
            if (line.StartsWith("Error:", StringComparison.Ordinal) || line.StartsWith("Critical:", StringComparison.Ordinal)
                || line.Contains("failed unexpectedly", StringComparison.Ordinal) || line.Contains("internal error", StringComparison.Ordinal))
            {
                Fail(ref _crashes, seed, $"{when}: {line}");
            }
        }
    }

    /// <summary>Counts a failure and keeps the first <see cref="KeptPerClass"/> of its class in words, so a flood of one class (hangs on an overloaded machine) cannot hide another.</summary>
    private void Fail(ref long counter, int seed, string what)
    {
        if (Interlocked.Increment(ref counter) > KeptPerClass)
        {
            return;
        }

        lock (_failures)
        {
            _failures.Add(seed < 0 ? what : $"SEED={seed}: {what}");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}
