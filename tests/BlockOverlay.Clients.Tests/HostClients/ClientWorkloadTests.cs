using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// Instances under real workloads: qemu-img writing a whole image over an instance whose
/// base is random bytes (its holes must become zeros), and fio's nbd engine with 32
/// random 4 KiB writes in flight per job, each block verified by its crc32c.
/// </summary>
public class ClientWorkloadTests
{
    private const int BaseSize = 16 << 20;
    private const long InstanceSize = 32 << 20;
    private const long JobSize = 16 << 20;

    [Test]
    public void Qemu_img_convert_into_an_instance_then_compare_finds_it_identical()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("128M");
        ws.WriteRandomFile("base.raw", BaseSize, seed: 31);
        ws.CreateInstance("vm", ws["base.raw"], "32M");
        var chunks = Enumerable.Range(0, 7).Select(i => ((long)i * (5 << 20) + i * 4099, 300_000)).ToArray();
        ws.WriteSparseFile("source.raw", InstanceSize, seed: 32, chunks);
        using var server = StoreServer.Start(ws, tcp: true);

        QemuImg(server, "convert", "-n", "-f", "raw", "-O", "raw", ws["source.raw"], server.UnixUri("vm"));

        var unix = QemuImg(server, "compare", "-f", "raw", "-F", "raw", ws["source.raw"], server.UnixUri("vm"));
        var tcp = QemuImg(server, "compare", "-f", "raw", "-F", "raw", ws["source.raw"], server.TcpUri("vm"));
        var againstBase = ClientTool.QemuImg.Run("compare", "-f", "raw", "-F", "raw", ws["base.raw"], server.UnixUri("vm"));
        Assert.Multiple(() =>
        {
            Assert.That(unix.Stdout, Does.Contain("Images are identical"));
            Assert.That(tcp.Stdout, Does.Contain("Images are identical"));
            Assert.That(againstBase.ExitCode, Is.EqualTo(1), $"the base must no longer show through\n{againstBase}");
        });
    }

    [Test]
    public void Fio_random_4k_writes_at_queue_depth_32_on_two_jobs_verify_clean()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("128M");
        ws.WriteRandomFile("base.raw", BaseSize, seed: 33);
        ws.CreateInstance("fio", ws["base.raw"], "32M"); // job 0 over the base, job 1 past it
        using var server = StoreServer.Start(ws);

        // verify_state_save=0 and the workspace as working directory: no *.state files anywhere else.
        var result = Tool.Run("/usr/bin/env",
        [
            "-C", ws.Path, ClientTool.Fio.Path,
            "--name=randwrite-verify", "--ioengine=nbd", $"--uri={server.UnixUri("fio")}",
            "--rw=randwrite", "--bs=4k", "--iodepth=32", $"--size={JobSize}", $"--offset_increment={JobSize}",
            "--numjobs=2", "--verify=crc32c", "--verify_state_save=0", "--output-format=json",
        ], TimeSpan.FromSeconds(60));

        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        var json = string.Join('\n', result.Stdout.Split('\n').Where(l => !l.StartsWith("fio: connected to NBD server", StringComparison.Ordinal)));
        using var report = JsonDocument.Parse(json);
        var jobs = report.RootElement.GetProperty("jobs").EnumerateArray().ToList();
        Assert.That(jobs, Has.Count.EqualTo(2));
        Assert.Multiple(() =>
        {
            foreach (var job in jobs)
            {
                var name = job.GetProperty("jobname").GetString();
                Assert.That(job.GetProperty("error").GetInt32(), Is.Zero, $"{name}: error");
                Assert.That(job.GetProperty("write").GetProperty("io_bytes").GetInt64(), Is.EqualTo(JobSize), $"{name}: bytes written");
                Assert.That(job.GetProperty("read").GetProperty("io_bytes").GetInt64(), Is.EqualTo(JobSize), $"{name}: bytes read back to verify");
            }
        });

        var layers = ExportContent.Map(server, "fio", "blockoverlay:layer");
        Assert.That(ExportContent.TypesOver(layers, 0, InstanceSize), Is.EquivalentTo(new[] { 1 }),
            $"every block was written, so all of it is upper: {ExportContent.Describe(layers)}");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);

        var row = ws.ListInstances().Single();
        Assert.That(row, Is.EqualTo(new[] { "fio", "32M", "32M", "isolated", ws["base.raw"] }), "instance list: name, size, upper data (every block once), flush mode, base");
        Assert.That(Directory.GetFiles(ws.Path, "*.state"), Is.Empty, "fio wrote verify state files");
    }

    private static ToolResult QemuImg(StoreServer server, params string[] args)
    {
        var result = ClientTool.QemuImg.Run(args, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        return result;
    }
}
