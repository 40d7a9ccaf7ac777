using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// qemu-io on an instance in its two cache modes, killed under it: the server gets SIGKILL
/// while qemu-io still holds its connection open, so qemu-io never closes the disk (closing
/// would flush) and only what the mode itself sent can have made the writes durable: FUA on
/// every write in writethrough mode, the <c>flush</c> command in writeback mode. After a
/// restart qemu-io reads every pattern back and the instance is the base with exactly
/// these changes.
/// </summary>
public class InstanceQemuIoTests
{
    private const int BaseSize = 4 << 20;

    /// <summary>Unaligned, across 4 KiB and 64 KiB boundaries, none overlapping another so each reads back alone.</summary>
    private static readonly QemuIoEdit[] Writes =
    [
        QemuIoEdit.Write(1000, 5000, 0xab),
        QemuIoEdit.Write(65535, 3, 0xcd),
        QemuIoEdit.Write(131071, 200003, 0x5a),
        QemuIoEdit.Write(0, 1, 0x01),
        QemuIoEdit.Zero(1048000, 10000),
        QemuIoEdit.Write(BaseSize - 777, 777, 0xee),
    ];

    /// <summary>Writeback only: in writethrough mode qemu sends a trim without FUA, so nothing promises it is durable.</summary>
    private static readonly QemuIoEdit Trim = QemuIoEdit.Discard(2 << 20, 128 << 10);

    [TestCase("writethrough")]
    [TestCase("writeback")]
    public void Acknowledged_writes_survive_kill_9_while_qemu_io_is_still_connected(string mode)
    {
        var writeback = mode == "writeback";
        QemuIoEdit[] edits = writeback ? [.. Writes, Trim] : Writes;
        // In writeback mode a read after the flush shows, by printing, that the flush is done.
        string[] commands = writeback ? [.. edits.Select(e => e.Command), "flush", Writes[0].ReadBack] : [.. edits.Select(e => e.Command)];
        string[] options = writeback ? ["-t", "writeback"] : [];
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed: 101);
        ws.CreateInstance("vm", ws["base.raw"]);

        using (var server = StoreServer.Start(ws))
        using (QemuIo.StartAndHold(server, server.UnixUri("vm"), options, commands))
        {
            server.Kill();
        }

        using (var server = StoreServer.Start(ws))
        {
            QemuIo.Run(server, server.UnixUri("vm"), ["-r"], [.. edits.Select(e => e.ReadBack)]);
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "vm"), QemuIoEdit.Apply(baseImage, edits)), Is.Null,
                "the whole instance after kill -9 and a restart");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }
    }
}
