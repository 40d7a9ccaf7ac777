using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// Scenario "the kernel nbd-client": inside a guest, nbd-client attaches an instance over
/// qemu's user network (forwarded to the server on the host's 127.0.0.1) with one connection
/// and with several (multi-conn); the guest makes ext4 on it, writes, fsyncs and detaches.
/// Another client, nbdcopy on the host, then finds a clean file system holding that data.
/// </summary>
public class KernelNbdClientTests
{
    private const string Instance = "attached";

    [TestCase(1)]
    [TestCase(4)]
    public void A_guest_attaches_an_instance_with_nbd_client_and_the_host_reads_its_files(int connections)
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("256M");
        ws.CreateInstance(Instance, basePath: null, size: "64M");
        var evidence = new Evidence();

        using var server = StoreServer.Start(ws, tcp: true);
        evidence.Add("server", () => server.Log);
        GuestReport report;
        using (var guest = Guest.BootWithNetwork("nbd-client", server.Port!.Value, evidence, "nbd-client-fs", Instance, $"{connections}"))
        {
            report = guest.WaitForPowerOff();
        }

        var attached = Regex.Count(server.Log, $"attached to export '{Instance}'");
        Assert.That(attached, Is.EqualTo(connections), () => $"connections the kernel opened to the export\n{evidence}");

        var fs = ExportedFileSystem.CopyOut(server, ws, Instance, evidence);
        fs.AssertClean();
        Assert.That(fs.Sha256("/payload"), Is.EqualTo(report.Sha256Of("/mnt/payload", evidence)), () => $"the file the guest fsynced\n{evidence}");
        Assert.That(fs.ReadText("/note"), Is.EqualTo($"attached with {connections} connection(s)\n"), evidence.ToString);
    }
}
