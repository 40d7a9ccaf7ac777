using System.Globalization;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// fio's nbd engine with four jobs at once on one instance: four connections (multi-conn),
/// each job in its own range, writing every 4 KiB block once with a crc32c header, reading
/// it back to verify, and flushing its connection at the end (end_fsync). After kill -9 and
/// a restart fio verifies every block again over four new connections (verify_only), and
/// the layer map is exactly the four ranges as the instance's own, base and zeros between.
/// </summary>
public class InstanceFioTests
{
    private const long M = 1 << 20;
    private const long JobSize = 8 * M;
    private const long JobStride = 10 * M;
    private const int Jobs = 4;
    private const int Zeros = 0;
    private const int Upper = 1;
    private const int Base = 2;

    [Test]
    public void Four_jobs_on_one_instance_verify_clean_after_kill_9_and_a_restart()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("128M");
        ws.WriteRandomFile("base.raw", 16 << 20, seed: 111);
        ws.CreateInstance("fio", ws["base.raw"], "40M"); // the base ends inside job 1's range

        using (var server = StoreServer.Start(ws))
        {
            var result = Fio(ws, server, "--end_fsync=1");
            Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
            AssertEveryJob(result, "read", JobSize, "bytes read back to verify");
            AssertEveryJob(result, "write", JobSize, "bytes written");
            server.Kill();
        }

        using (var server = StoreServer.Start(ws))
        {
            var result = Fio(ws, server, "--verify_only");
            Assert.That(result.ExitCode, Is.Zero, () => $"verification after kill -9 and a restart\n{result}\n{server}");
            AssertEveryJob(result, "read", JobSize, "bytes verified after the restart");
            ExactMap.AssertEqual(
                ExportContent.Map(server, "fio", "blockoverlay:layer"),
                ExactMap.Runs((8 * M, Upper), (10 * M, Base), (18 * M, Upper), (20 * M, Zeros), (28 * M, Upper), (30 * M, Zeros), (38 * M, Upper), (40 * M, Zeros)),
                "blockoverlay:layer: the four jobs' ranges and nothing else are upper");

            // The same verification must notice one block changed behind fio's back.
            var changed = (2 * JobStride) + M;
            QemuIo.Run(server, server.UnixUri("fio"), [], [QemuIoEdit.Write(changed, 4096, 0x5a).Command]);
            var broken = Fio(ws, server, "--verify_only");
            Assert.That(broken.ExitCode, Is.Not.Zero, () => $"fio did not notice the changed block\n{broken}");
            Assert.That(broken.Output, Does.Contain(string.Create(CultureInfo.InvariantCulture, $"bad magic header 5a5a, wanted acca at file verify.2.0 offset {changed}")),
                broken.ToString);
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        Assert.That(Directory.GetFiles(ws.Path, "*.state"), Is.Empty, "fio wrote verify state files");
    }

    /// <summary>Runs the four jobs in the workspace (fio writes files into its working directory).</summary>
    private static ToolResult Fio(StoreWorkspace ws, StoreServer server, string extra) =>
        Tool.Run("/usr/bin/env",
        [
            "-C", ws.Path, ClientTool.Fio.Path,
            "--name=verify", "--ioengine=nbd", $"--uri={server.UnixUri("fio")}",
            "--rw=randwrite", "--bs=4k", "--iodepth=16", $"--size={JobSize}", $"--offset_increment={JobStride}",
            $"--numjobs={Jobs}", "--verify=crc32c", "--verify_state_save=0", "--output-format=json", extra,
        ], TimeSpan.FromSeconds(60));

    private static void AssertEveryJob(ToolResult result, string direction, long bytes, string what)
    {
        // fio prints this line per connection on stdout before the JSON.
        var json = string.Join('\n', result.Stdout.Split('\n').Where(l => !l.StartsWith("fio: connected to NBD server", StringComparison.Ordinal)));
        using var report = JsonDocument.Parse(json);
        var jobs = report.RootElement.GetProperty("jobs").EnumerateArray().ToList();
        Assert.That(jobs, Has.Count.EqualTo(Jobs), result.ToString);
        Assert.Multiple(() =>
        {
            foreach (var (job, index) in jobs.Select((j, i) => (j, i)))
            {
                Assert.That(job.GetProperty("error").GetInt32(), Is.Zero, $"job {index}: error");
                Assert.That(job.GetProperty(direction).GetProperty("io_bytes").GetInt64(), Is.EqualTo(bytes), $"job {index}: {what}");
            }
        });
    }
}
