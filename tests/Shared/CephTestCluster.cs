using System.Diagnostics;
using System.Text.Json;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay;

/// <summary>
/// The one-node Ceph cluster of tests/ceph/cluster.sh (one monitor, one memstore OSD, pool
/// <c>rbd</c>), started on first use, at most once per test run, and stopped by PID at the
/// end of the run (<see cref="CephClusterTeardown"/>). The script's watcher also stops it if
/// this process dies without tearing down.
/// </summary>
internal sealed class CephTestCluster
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(3);
    private static readonly Lazy<Task<CephTestCluster>> s_shared = new(StartAsync);

    private CephTestCluster(string directory, string configFile, TimeSpan startTime)
    {
        Directory = directory;
        ConfigFile = configFile;
        StartTime = startTime;
    }

    /// <summary>Where the cluster's config, data, logs and PIDs live.</summary>
    public string Directory { get; }

    /// <summary>The ceph.conf a client names with --ceph-conf or $CEPH_CONF.</summary>
    public string ConfigFile { get; }

    public TimeSpan StartTime { get; }

    public CephClientOptions Options => new(ConfigFile);

    /// <summary>The shared cluster, started by the first caller.</summary>
    public static Task<CephTestCluster> SharedAsync() => s_shared.Value;

    /// <summary>A name for a new image in pool rbd, unique to this call.</summary>
    public static RbdAddress NewImage(string purpose) => new("rbd", $"{purpose}-{Guid.NewGuid():N}");

    /// <summary>The repository's tests/ceph/cluster.sh, found above the test binaries.</summary>
    public static string Script()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var script = Path.Combine(directory.FullName, "tests", "ceph", "cluster.sh");
            if (File.Exists(script))
            {
                return script;
            }
        }

        throw new FileNotFoundException($"tests/ceph/cluster.sh not found above {AppContext.BaseDirectory}");
    }

    /// <summary>
    /// Bytes the cluster's OSDs have received from clients in write operations since they
    /// started (the sum of every OSD's <c>op_in_bytes</c> perf counter): the cluster's own
    /// count of what was written to it, to hold the server's counters against. Read from the
    /// OSDs themselves (<c>ceph tell osd.N perf dump</c>), since without a manager daemon the
    /// pool statistics of <c>rados df</c> and <c>ceph osd pool stats</c> are empty.
    /// </summary>
    public async Task<long> ClientBytesWrittenAsync()
    {
        long total = 0;
        using var osds = JsonDocument.Parse(await CephAsync("osd", "ls"));
        foreach (var osd in osds.RootElement.EnumerateArray())
        {
            using var dump = JsonDocument.Parse(await CephAsync("tell", $"osd.{osd.GetInt32()}", "perf", "dump"));
            total += dump.RootElement.GetProperty("osd").GetProperty("op_in_bytes").GetInt64();
        }

        return total;
    }

    /// <summary>Stops the cluster if this run started one.</summary>
    public static async Task StopIfStartedAsync()
    {
        if (s_shared.IsValueCreated && s_shared.Value.IsCompletedSuccessfully)
        {
            await RunScriptAsync("stop", s_shared.Value.Result.Directory);
        }
    }

    private static async Task<CephTestCluster> StartAsync()
    {
        var directory = Path.Combine(Path.GetTempPath(), $"blockoverlay-ceph-{Environment.ProcessId}-{Guid.NewGuid():N}"[..48]);
        var clock = Stopwatch.StartNew();
        var output = await RunScriptAsync("start", directory, Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return new CephTestCluster(directory, output.Trim().Split('\n')[^1], clock.Elapsed);
    }

    private static Task<string> RunScriptAsync(params string[] arguments) =>
        RunAsync("bash", [Script(), .. arguments], "is Ceph installed? run make deps");

    /// <summary>The <c>ceph</c> command line tool against this cluster; returns its JSON output.</summary>
    private Task<string> CephAsync(params string[] arguments) =>
        RunAsync("ceph", ["-c", ConfigFile, "--format", "json", .. arguments], "the test cluster's logs are in " + Directory);

    private static async Task<string> RunAsync(string program, string[] arguments, string hint)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(StartTimeout);
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException(
                $"{program} {string.Join(' ', arguments)} failed (exit {process.ExitCode}; {hint}): {await stderr}");
        }

        return await stdout;
    }
}

/// <summary>Stops the shared Ceph cluster once every test of the assembly has run.</summary>
[SetUpFixture]
public sealed class CephClusterTeardown
{
    [OneTimeTearDown]
    public static Task StopCluster() => CephTestCluster.StopIfStartedAsync();
}
