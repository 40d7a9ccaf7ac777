using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// <c>instance commit</c> (the docker commit of a disk) and <c>instance clone</c>, offline and
/// on a running server.
/// </summary>
public class CommitCloneTests
{
    private const int BaseSize = 4 << 20;

    [Test]
    public void Commit_writes_the_whole_view_including_unflushed_writes_and_the_image_serves_as_a_base()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var expected = ws.WriteRandomFile("base.raw", BaseSize, seed: 81);
        ws.CreateInstance("app", ws["base.raw"]);
        using (var server = StoreServer.Start(ws))
        {
            // Not flushed: the live commit reads through the served export, cache included.
            StoreNbdsh.Run(server, """
                h = connect("app")
                h.pwrite(b"\x5c" * 10000, 12345)
                h.zero(65536, 1 << 20)
                """);
            StoreWorkspace.CliOk("instance", "commit", "app", ws["app.raw"], "--store", ws.StorePath);
            expected.AsSpan(12345, 10000).Fill(0x5c);
            expected.AsSpan(1 << 20, 65536).Clear();
            Assert.That(StoreWorkspace.Sha256(ws["app.raw"]), Is.EqualTo(Sha256(expected)), "the committed image is the instance's view");

            var again = StoreWorkspace.Cli("instance", "commit", "app", ws["app.raw"], "--store", ws.StorePath);
            Assert.That(again.ExitCode, Is.EqualTo(1));
            Assert.That(again.Stderr, Does.Contain("exists"), again.ToString);

            // The image is a base like any other.
            StoreWorkspace.CliOk("instance", "create", "child", "--base", ws["app.raw"], "--store", ws.StorePath);
            var child = StoreNbdsh.Run(server, """
                print(connect("child").pread(16, 12345).hex())
                """);
            Assert.That(child.Trim(), Is.EqualTo(string.Concat(Enumerable.Repeat("5c", 16))), "an instance over the committed image");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        // Offline, after a clean stop: the same bytes.
        StoreWorkspace.CliOk("instance", "commit", "app", ws["offline.raw"], "--store", ws.StorePath);
        Assert.That(StoreWorkspace.Sha256(ws["offline.raw"]), Is.EqualTo(Sha256(expected)));
        Assert.That(Directory.GetFiles(ws.Path, "*.partial-*"), Is.Empty, "no temporary image left behind");
    }

    [Test]
    public void A_clone_starts_as_its_sources_view_and_then_goes_its_own_way()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.WriteRandomFile("base.raw", BaseSize, seed: 82);
        ws.CreateInstance("src", ws["base.raw"]);
        using (var server = StoreServer.Start(ws))
        {
            StoreNbdsh.Run(server, """
                h = connect("src")
                h.pwrite(b"\x11" * 8192, 0)
                h.trim(65536, 65536)
                """);
            StoreWorkspace.CliOk("instance", "clone", "src", "copy", "--store", ws.StorePath);
            var views = StoreNbdsh.Run(server, """
                s, c = connect("src"), connect("copy")
                print(s.pread(BIG, 0) == c.pread(BIG, 0))
                c.pwrite(b"\x22" * 4096, 0)
                s.pwrite(b"\x33" * 4096, 8192)
                print(s.pread(1, 0).hex(), c.pread(1, 8192) == s.pread(1, 8192))
                c.flush()
                """.Replace("BIG", (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal)).Split('\n');
            Assert.That(views[0], Is.EqualTo("True"), "the clone reads as its source (data, trim and base)");
            Assert.That(views[1], Is.EqualTo("11 False"), "writes to either stay in it");
            server.Kill();
        }

        using (var restarted = StoreServer.Start(ws))
        {
            var after = StoreNbdsh.Run(restarted, """
                print(connect("copy").pread(1, 0).hex(), connect("copy").pread(1, 4096).hex())
                """);
            Assert.That(after.Trim(), Is.EqualTo("22 11"), "the clone's copy and its own flushed write survive a kill");
            Assert.That(restarted.Terminate(), Is.Zero, restarted.ToString);
        }
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes));
}
