using System.Diagnostics;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// Bulk copies with nbdcopy, which runs several connections (multi-conn) with many
/// requests in flight each and skips or zeroes the source's holes.
/// </summary>
public class NbdcopyTests
{
    private const long GiB = 1L << 30;

    [Test]
    public void A_1_GiB_image_copied_in_and_back_out_is_identical()
    {
        using var scratch = new ScratchDirectory();
        var source = scratch.CreateSparseImage("source.img", GiB, blockSize: 1 << 20, stride: 64 << 20, seed: 1);
        var copy = scratch["copy.img"];
        using var server = ServerProcess.StartWithTcp("disk=memory:1G");
        var clock = Stopwatch.StartNew();

        Copy(server, source, server.UnixUri("disk"));
        Copy(server, server.TcpUri("disk"), copy);

        TestContext.Out.WriteLine($"1 GiB in and out in {clock.Elapsed.TotalSeconds:F1} s");
        Assert.That(new FileInfo(copy).Length, Is.EqualTo(GiB));
        Assert.That(ScratchDirectory.FirstDifference(source, copy), Is.Null, "first differing byte");
    }

    [Test]
    public void Copying_a_sparse_image_keeps_the_export_sparse()
    {
        using var scratch = new ScratchDirectory();
        var source = scratch.CreateSparseImage("source.img", GiB, blockSize: 1 << 20, stride: 64 << 20, seed: 2);
        using var server = ServerProcess.Start("disk=memory:1G");

        Copy(server, source, server.UnixUri("disk"));

        var totals = ClientTool.Nbdinfo.Run("--map", "--totals", "--json", server.UnixUri("disk"));
        Assert.That(totals.ExitCode, Is.Zero, $"{totals}\n{server}");
        using var json = JsonDocument.Parse(totals.Stdout);
        var data = json.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("type").GetInt64() == 0)
            .Sum(e => e.GetProperty("size").GetInt64());
        // 16 one-MiB blocks, each touching at most 18 of the export's 64 KiB pages.
        Assert.That(data, Is.InRange(16L << 20, 16L * 18 * 65536), $"bytes reported as data\n{totals.Stdout}");
    }

    private static void Copy(ServerProcess server, string from, string to)
    {
        var result = ClientTool.Nbdcopy.Run([from, to], TimeSpan.FromSeconds(40));
        Assert.That(result.ExitCode, Is.Zero, $"{result}\n{server}");
    }
}
