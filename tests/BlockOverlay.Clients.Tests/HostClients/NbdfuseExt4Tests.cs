using System.Text;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// The host kernel's ext4 on an instance whose base is an ext4 image (a rootfs, as a
/// container would get), through nbdfuse and a loop device: the base's file reads through,
/// a file written and fsynced in it is there afterwards as another client (nbdcopy, then
/// e2fsck and debugfs) sees the instance, and the base image is never written. Killing the
/// server right after fsync returns shows that the fsync reached the server as a flush:
/// without a flush the store keeps nothing of the writes.
/// </summary>
public class NbdfuseExt4Tests
{
    private const long Size = 64 << 20;
    private const string BaseText = "from the base image\n";

    [Test]
    public void A_file_fsynced_in_ext4_over_nbdfuse_is_there_after_umount_and_a_restart()
    {
        using var ws = new StoreWorkspace();
        var (payload, baseHash) = Prepare(ws);

        using (var server = StoreServer.Start(ws))
        {
            using var disk = Ext4OverNbdfuse.Mount(server.UnixUri("root"), ws["host"], Size);
            Assert.That(File.ReadAllText(Path.Combine(disk.MountPoint, "base.txt")), Is.EqualTo(BaseText), "the base's file through the mount");
            WriteWithFsync(ws["payload.bin"], Path.Combine(disk.MountPoint, "f"));
            disk.Unmount();
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        var image = CopyOut(ws);
        var fsck = HostTool.E2fsck.Run(["-f", "-n", image], TimeSpan.FromSeconds(30));
        Assert.That(fsck.ExitCode, Is.Zero, () => $"the file system is not clean after a clean umount\n{fsck}");
        AssertFiles(ws, image, payload);
        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
    }

    [Test]
    public void A_file_fsynced_in_ext4_over_nbdfuse_survives_kill_9_of_the_server_right_after_fsync()
    {
        using var ws = new StoreWorkspace();
        var (payload, baseHash) = Prepare(ws);

        using (var server = StoreServer.Start(ws))
        using (var disk = Ext4OverNbdfuse.Mount(server.UnixUri("root"), ws["host"], Size))
        {
            WriteWithFsync(ws["payload.bin"], Path.Combine(disk.MountPoint, "f"));
            server.Kill();
        } // the mount is torn down over a dead server

        var image = CopyOut(ws);
        // Preen mode is what boot does after a crash: replay the journal, fix what is safe
        // (the free counts ext4 does not journal) and exit 4 on anything else.
        var preen = HostTool.E2fsck.Run(["-f", "-p", image], TimeSpan.FromSeconds(30));
        Assert.That(preen.ExitCode, Is.AnyOf(0, 1), () => $"0 clean, 1 safely fixed; more is damage\n{preen}");
        var check = HostTool.E2fsck.Run(["-f", "-n", image], TimeSpan.FromSeconds(30));
        Assert.That(check.ExitCode, Is.Zero, () => $"not clean after the journal replay\n{check}");
        AssertFiles(ws, image, payload);
        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
    }

    /// <summary>A store, an ext4 base image holding base.txt, the instance "root" over it, and the payload; returns the payload and the base's hash.</summary>
    private static (byte[] Payload, string BaseHash) Prepare(StoreWorkspace ws)
    {
        ws.CreateStore("128M");
        var rootfs = Directory.CreateDirectory(ws["rootfs"]).FullName;
        File.WriteAllText(Path.Combine(rootfs, "base.txt"), BaseText);
        HostTool.MkfsExt4.RunOk("-q", "-F", "-d", rootfs, ws["base.raw"], "64M");
        ws.CreateInstance("root", ws["base.raw"]);
        var payload = ws.WriteRandomFile("payload.bin", (1 << 20) + 3000, seed: 121);
        return (payload, StoreWorkspace.Sha256(ws["base.raw"]));
    }

    /// <summary>dd with conv=fsync: dd returns only after fsync of the new file returned.</summary>
    private static void WriteWithFsync(string from, string to) =>
        HostTool.Dd.RunOk($"if={from}", $"of={to}", "bs=64k", "conv=fsync", "status=none");

    /// <summary>Restarts the server and copies the whole instance into a raw file with nbdcopy.</summary>
    private static string CopyOut(StoreWorkspace ws)
    {
        var image = ws["root.raw"];
        using var server = StoreServer.Start(ws);
        var copy = ClientTool.Nbdcopy.Run([server.UnixUri("root"), image], TimeSpan.FromSeconds(30));
        Assert.That(copy.ExitCode, Is.Zero, () => $"{copy}\n{server}");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
        return image;
    }

    private static void AssertFiles(StoreWorkspace ws, string image, byte[] payload)
    {
        var written = Dump(ws, image, "/f");
        var fromBase = Encoding.UTF8.GetString(Dump(ws, image, "/base.txt"));
        Assert.Multiple(() =>
        {
            Assert.That(written, Is.EqualTo(payload), "the fsynced file, read by debugfs");
            Assert.That(fromBase, Is.EqualTo(BaseText), "the base's file, read by debugfs");
        });
    }

    /// <summary>A file of the ext4 image, dumped by debugfs (which reports a missing file on stderr and exits 0).</summary>
    private static byte[] Dump(StoreWorkspace ws, string image, string path)
    {
        var output = ws[$"dump-{Guid.NewGuid():N}"];
        var result = HostTool.Debugfs.RunOk("-R", $"dump {path} {output}", image);
        Assert.That(File.Exists(output), Is.True, () => $"debugfs found no {path}\n{result}");
        return File.ReadAllBytes(output);
    }
}
