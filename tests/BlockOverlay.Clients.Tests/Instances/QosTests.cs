using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Instances;

/// <summary>
/// Per-instance limits through the real server and fio: an instance limited to 200 requests a
/// second gets about that while an unlimited neighbour on its own connection runs far faster,
/// lifting the limit with <c>instance set</c> frees a connection already open, and the wait is
/// counted. Bounds are generous (a shared 2-core machine); the precise ±10 % over 10 s is
/// measured by perf/qos-limit.sh (perf/RESULTS.md, section qos-limit).
/// </summary>
public class QosTests
{
    [Test]
    public async Task A_limited_instance_keeps_its_rate_an_unlimited_neighbour_does_not_and_a_lifted_limit_frees_open_connections()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("128M");
        StoreWorkspace.CliOk("instance", "create", "limited", "--size", "16M", "--iops-limit", "200", "--store", ws.StorePath);
        StoreWorkspace.CliOk("instance", "create", "free", "--size", "16M", "--store", ws.StorePath);
        using var server = StoreServer.Start(ws);

        var limitedRun = Task.Run(() => Fio(server, "limited", seconds: 3));
        var freeRun = Task.Run(() => Fio(server, "free", seconds: 3));
        var (limited, free) = (await limitedRun, await freeRun);
        Assert.That(limited, Is.InRange(180, 230), "200 requests a second (±10 %), one 0.1 s burst allowed");
        Assert.That(free, Is.GreaterThan(1000), "the neighbour is not held to anyone's limit");

        using (var stat = Stat(ws, "limited"))
        {
            Assert.That(stat.RootElement.GetProperty("iopsLimit").GetInt64(), Is.EqualTo(200));
            Assert.That(stat.RootElement.GetProperty("limitWaitSeconds").GetDouble(), Is.GreaterThan(1), "fio at depth 8 spent most of 3 s waiting");
            Assert.That(stat.RootElement.GetProperty("throttledSeconds").GetDouble(), Is.Zero, "reads are never throttled for dirty memory");
        }

        using (var stat = Stat(ws, "free"))
        {
            Assert.That(stat.RootElement.GetProperty("limitWaits").GetInt64(), Is.Zero);
        }

        // A limit lifted while fio's connection is open reaches that connection.
        var lifted = Task.Run(() => Fio(server, "limited", seconds: 4));
        await Task.Delay(TimeSpan.FromSeconds(1));
        StoreWorkspace.CliOk("instance", "set", "limited", "--iops-limit", "none", "--store", ws.StorePath);
        Assert.That(await lifted, Is.GreaterThan(600), "at 200/s four seconds would give 200; lifted after one, far more");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);

        StoreWorkspace.CliOk("instance", "set", "limited", "--bps-limit", "64M", "--weight", "300", "--store", ws.StorePath);
        using var offline = Stat(ws, "limited");
        Assert.That((offline.RootElement.GetProperty("iopsLimit").GetInt64(), offline.RootElement.GetProperty("bpsLimit").GetInt64(),
            offline.RootElement.GetProperty("weight").GetInt32()), Is.EqualTo((0L, 64L << 20, 300)), "kept with the instance, set offline too");
    }

    private static JsonDocument Stat(StoreWorkspace ws, string name) =>
        JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", name, "--json", "--store", ws.StorePath).Stdout);

    /// <summary>fio's read IOPS: 4 KiB random reads at depth 8 on one connection for <paramref name="seconds"/>.</summary>
    private static double Fio(StoreServer server, string instance, int seconds)
    {
        var result = Tool.Run(ClientTool.Fio.Path,
        [
            "--name=qos", "--ioengine=nbd", $"--uri={server.UnixUri(instance)}", "--rw=randread", "--bs=4k", "--iodepth=8",
            "--size=16M", "--time_based", $"--runtime={seconds}", "--output-format=json",
        ], TimeSpan.FromSeconds(seconds + 60));
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        var json = string.Join('\n', result.Stdout.Split('\n').Where(l => !l.StartsWith("fio: connected to NBD server", StringComparison.Ordinal)));
        using var report = JsonDocument.Parse(json);
        return report.RootElement.GetProperty("jobs")[0].GetProperty("read").GetProperty("iops").GetDouble();
    }
}
