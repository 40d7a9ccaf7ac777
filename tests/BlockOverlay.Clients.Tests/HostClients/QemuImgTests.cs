using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>qemu-img, qemu's block layer as a batch tool: convert into and out of exports, compare.</summary>
public class QemuImgTests
{
    private const long Size = 64 << 20;

    [TestCase("unix")]
    [TestCase("tcp")]
    public void Convert_into_an_export_then_compare_finds_it_identical_over_both_uri_forms(string transport)
    {
        using var scratch = new ScratchDirectory();
        var source = scratch.CreateSparseImage("source.img", Size, blockSize: 300_000, stride: 5 << 20, seed: 3);
        using var server = ServerProcess.StartWithTcp("disk=memory:64M");
        var target = transport == "tcp" ? server.TcpUri("disk") : server.UnixUri("disk");

        Run(server, "convert", "-n", "-f", "raw", "-O", "raw", source, target);

        var unix = Run(server, "compare", "-f", "raw", "-F", "raw", source, server.UnixUri("disk"));
        var tcp = Run(server, "compare", "-f", "raw", "-F", "raw", source, server.TcpUri("disk"));
        Assert.Multiple(() =>
        {
            Assert.That(unix.Stdout, Does.Contain("Images are identical"));
            Assert.That(tcp.Stdout, Does.Contain("Images are identical"));
        });
    }

    [Test]
    public void Convert_out_of_an_export_over_tcp_reproduces_the_source_file()
    {
        using var scratch = new ScratchDirectory();
        var source = scratch.CreateSparseImage("source.img", Size, blockSize: 300_000, stride: 5 << 20, seed: 4);
        var copy = scratch["copy.img"];
        using var server = ServerProcess.StartWithTcp("disk=memory:64M");

        Run(server, "convert", "-n", "-f", "raw", "-O", "raw", source, server.UnixUri("disk"));
        Run(server, "convert", "-f", "raw", "-O", "raw", server.TcpUri("disk"), copy);

        Assert.That(new FileInfo(copy).Length, Is.EqualTo(Size));
        Assert.That(ScratchDirectory.FirstDifference(source, copy), Is.Null, "first differing byte");
    }

    [Test]
    public void Compare_notices_a_single_changed_byte_in_the_export()
    {
        using var scratch = new ScratchDirectory();
        var source = scratch.CreateSparseImage("source.img", Size, blockSize: 300_000, stride: 5 << 20, seed: 5);
        using var server = ServerProcess.Start("disk=memory:64M");
        Run(server, "convert", "-n", "-f", "raw", "-O", "raw", source, server.UnixUri("disk"));

        NbdshScript.Run(server, """
            h = connect("disk")
            old = h.pread(1, 40000001)[0]
            h.pwrite(bytes([old ^ 0xff]), 40000001)
            """);
        var result = ClientTool.QemuImg.Run("compare", "-f", "raw", "-F", "raw", source, server.UnixUri("disk"));

        Assert.That(result.ExitCode, Is.EqualTo(1), $"1 means the images differ\n{result}\n{server}");
        // qemu-img compares 512-byte sectors and names the first one that differs.
        Assert.That(result.Stdout, Does.Contain("Content mismatch at offset 40000000!"));
    }

    private static ToolResult Run(ServerProcess server, params string[] args)
    {
        var result = ClientTool.QemuImg.Run(args, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, $"{result}\n{server}");
        return result;
    }
}
