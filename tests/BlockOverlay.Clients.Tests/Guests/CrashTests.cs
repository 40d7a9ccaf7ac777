using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// Scenario "crash": a guest on an instance writes and fsyncs a file, then keeps writing
/// without fsync; the server gets SIGKILL in the middle of that. After a restart, a new guest
/// on the same instance mounts the file system (ext4 replays its journal) and finds the
/// fsynced file intact, and the file system is clean.
/// </summary>
public class CrashTests
{
    private const string Instance = "crash";
    private const string Fsynced = "/data/fsynced";

    [Test]
    public void A_fsynced_file_survives_kill_9_of_the_server_during_later_writes()
    {
        var kit = GuestKit.Current;
        using var ws = new StoreWorkspace();
        ws.CreateStore("256M");
        ws.CreateInstance(Instance, kit.BaseImage);
        var evidence = new Evidence();

        string fsyncedSha256;
        using (var server = StoreServer.Start(ws))
        using (var writer = Guest.BootFromExport(server.SocketPath, Instance, evidence, "crash-writer"))
        {
            evidence.Add("server", () => server.Log);
            writer.WaitForLine("E2E-FSYNCED");
            fsyncedSha256 = writer.Report().Sha256Of(Fsynced, evidence);
            writer.WaitForLine("E2E-UNSYNCED 2"); // unflushed writes are streaming now
            server.Kill();
            writer.Kill();
        }

        using (var server = StoreServer.Start(ws))
        {
            evidence.Add("restarted server", () => server.Log);
            Assert.That(() => server.Log, Does.Contain("after a crash").After(5000, 20), () => $"the restarted server should have recovered an unclean store\n{evidence}");

            using (var checker = Guest.BootFromExport(server.SocketPath, Instance, evidence, "report-files", Fsynced))
            {
                var report = checker.WaitForPowerOff();
                Assert.That(report.KernelMessages, Has.Some.Contains("recovery complete"),
                    () => $"ext4 should have replayed its journal at the mount after the crash\n{evidence}");
                Assert.That(report.Sha256Of(Fsynced, evidence), Is.EqualTo(fsyncedSha256), () => $"the fsynced file changed\n{evidence}");
            }

            var fs = ExportedFileSystem.CopyOut(server, ws, Instance, evidence);
            fs.AssertClean();
            Assert.That(fs.Sha256(Fsynced), Is.EqualTo(fsyncedSha256), () => $"the fsynced file as the host reads it\n{evidence}");
        }
    }
}
