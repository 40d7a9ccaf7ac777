using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// qemu-io, qemu's block layer one request at a time. By default it is write-through, so
/// every write carries FUA; with <c>-t writeback</c> writes are plain and <c>flush</c>
/// sends FLUSH; <c>write -z</c> sends WRITE_ZEROES and <c>discard</c> sends TRIM.
/// <c>read -P</c> checks every byte against a pattern.
/// </summary>
public partial class QemuIoTests
{
    /// <summary>Writes that straddle 4 KiB and 64 KiB boundaries, and the gaps between them.</summary>
    private static readonly string[] UnalignedWrites =
    [
        "write -P 0xab 1000 5000",
        "write -P 0xcd 65535 3",
        "write -P 0x5a 131071 200003",
        "write -P 0x01 0 1",
    ];

    private static readonly string[] UnalignedReads =
    [
        "read -P 0x01 0 1",
        "read -P 0 1 999",
        "read -P 0xab 1000 5000",
        "read -P 0 6000 59535",
        "read -P 0xcd 65535 3",
        "read -P 0 65538 65533",
        "read -P 0x5a 131071 200003",
        "read -P 0 331074 1000",
    ];

    [TestCase("unix")]
    [TestCase("tcp")]
    public void Writethrough_writes_at_unaligned_offsets_read_back_their_patterns(string transport)
    {
        using var server = ServerProcess.StartWithTcp("disk=memory:64M");
        var uri = transport == "tcp" ? server.TcpUri("disk") : server.UnixUri("disk");

        RunClean(server, uri, [], [.. UnalignedWrites, .. UnalignedReads]);
        // A new connection, read-only, sees the same bytes.
        RunClean(server, uri, ["-r"], UnalignedReads);
    }

    [Test]
    public void Writeback_writes_then_flush_are_visible_to_a_new_connection()
    {
        using var scratch = new ScratchDirectory();
        var image = scratch.CreateEmptyImage("disk.img", 64 << 20);
        using var server = ServerProcess.Start($"disk=file:{image}");
        var uri = server.UnixUri("disk");

        RunClean(server, uri, ["-t", "writeback"], [.. UnalignedWrites, "write -f -P 0x66 7000001 12345", "flush"]);

        RunClean(server, uri, ["-r"], [.. UnalignedReads, "read -P 0x66 7000001 12345", "read -P 0 7012346 1000"]);
        using var file = File.OpenRead(image);
        var buffer = new byte[5000];
        file.Position = 1000;
        file.ReadExactly(buffer);
        Assert.That(buffer, Is.All.EqualTo((byte)0xab), "the bytes in the image file");
    }

    [TestCase("memory:64M")]
    [TestCase("file")]
    public void Write_zeroes_and_discard_read_back_as_zeros_between_the_untouched_bytes(string backing)
    {
        using var scratch = new ScratchDirectory();
        var export = backing == "file" ? $"disk=file:{scratch.CreateEmptyImage("disk.img", 64 << 20)}" : $"disk={backing}";
        using var server = ServerProcess.Start(export);
        var uri = server.UnixUri("disk");

        RunClean(server, uri, ["-t", "writeback"],
        [
            "write -P 0x77 0 2097152",
            "write -z 4097 10000",          // NO_HOLE
            "write -z -u 100001 300000",    // may unmap
            "discard 524287 655362",        // TRIM across whole 64 KiB pages, unaligned ends
            "flush",
        ]);

        RunClean(server, uri, ["-r"],
        [
            "read -P 0x77 0 4097",
            "read -P 0 4097 10000",
            "read -P 0x77 14097 85904",
            "read -P 0 100001 300000",
            "read -P 0x77 400001 124286",
            "read -P 0 524287 655362",
            "read -P 0x77 1179649 917503",
        ]);
    }

    [Test]
    public void A_wrong_pattern_is_reported_so_the_checks_above_can_fail()
    {
        using var server = ServerProcess.Start("disk=memory:1M");

        var result = ClientTool.QemuIo.Run("-f", "raw", server.UnixUri("disk"), "-c", "write -P 0xab 1000 5000", "-c", "read -P 0xcd 1000 5000");

        Assert.That(result.Output, Does.Contain("Pattern verification failed at offset 1000, 5000 bytes"), result.ToString());
    }

    /// <summary>
    /// Runs qemu-io with one <c>-c</c> per command. qemu-io does not always exit non-zero on
    /// failure, so besides the exit code the output must hold one success line per I/O
    /// command and no failure or error message.
    /// </summary>
    private static void RunClean(ServerProcess server, string uri, string[] options, string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        args.AddRange(options);
        args.Add(uri);
        foreach (var command in commands)
        {
            args.Add("-c");
            args.Add(command);
        }

        var result = ClientTool.QemuIo.Run(args, TimeSpan.FromSeconds(30));
        var expectedSuccesses = commands.Count(c => !c.StartsWith("flush", StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, $"{result}\n{server}");
            Assert.That(result.Output, Does.Not.Contain("Pattern verification failed").And.Not.Contain("failed").IgnoreCase
                .And.Not.Contain("error").IgnoreCase, $"{result}\n{server}");
            Assert.That(SuccessLine().Matches(result.Stdout), Has.Count.EqualTo(expectedSuccesses), $"one success line per command\n{result}");
        });
    }

    [GeneratedRegex(@"^(wrote|read|discard) (\d+)/\2 bytes at offset \d+$", RegexOptions.Multiline)]
    private static partial Regex SuccessLine();
}
