using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// fio's nbd engine: one connection per job, 32 requests in flight each, every block
/// written with a crc32c header and read back to verify it. fio exits non-zero when a
/// verify fails.
/// </summary>
public class FioTests
{
    private const long JobSize = 64 << 20;

    [TestCase("memory:1G")]
    [TestCase("file")]
    public void Two_jobs_of_random_4k_writes_at_queue_depth_32_verify_clean(string backing)
    {
        using var scratch = new ScratchDirectory();
        var export = backing == "file" ? $"disk=file:{scratch.CreateEmptyImage("disk.img", 1L << 30)}" : $"disk={backing}";
        using var server = ServerProcess.Start(export);

        // Each job gets its own 64 MiB (offset_increment): jobs writing the same blocks
        // would overwrite each other's verify headers.
        var result = ClientTool.Fio.Run(
        [
            "--name=randwrite-verify", "--ioengine=nbd", $"--uri={server.UnixUri("disk")}",
            "--rw=randwrite", "--bs=4k", "--iodepth=32", $"--size={JobSize}", $"--offset_increment={JobSize}",
            "--numjobs=2", "--verify=crc32c", "--verify_state_save=0", "--output-format=json",
        ], TimeSpan.FromSeconds(60));

        Assert.That(result.ExitCode, Is.Zero, $"{result}\n{server}");
        // fio prints this line per connection on stdout before the JSON.
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

        var written = ClientTool.Nbdinfo.Run("--map", "--totals", "--json", server.UnixUri("disk"));
        using var totals = JsonDocument.Parse(written.Stdout);
        var data = totals.RootElement.EnumerateArray().Where(e => e.GetProperty("type").GetInt64() == 0).Sum(e => e.GetProperty("size").GetInt64());
        Assert.That(data, Is.EqualTo(2 * JobSize), $"the export holds exactly the two jobs' blocks as data\n{written.Stdout}");
    }
}
