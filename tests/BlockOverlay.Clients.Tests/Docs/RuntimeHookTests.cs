using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Docs;

/// <summary>
/// docs/examples/runtime-hook.sh runs as an OCI runtime would run it: the container's state
/// on standard input, create when the container is created, the disk attached through the
/// URI it wrote, delete when the container is removed.
/// </summary>
public class RuntimeHookTests
{
    private const string Id = "4f9c2a1b7e";

    [Test]
    public void The_hook_gives_a_container_a_disk_on_create_and_takes_it_away_on_delete()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("128M");
        ws.WriteRandomFile("rootfs.raw", 4 << 20, seed: 1414);
        StoreWorkspace.CliOk("base", "add", "rootfs", ws["rootfs.raw"], "--store", ws.StorePath);
        using var server = StoreServer.Start(ws);
        Directory.CreateDirectory(ws["bundle"]);
        File.WriteAllText(ws["state.json"], JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["ociVersion"] = "1.2.0",
            ["id"] = Id,
            ["status"] = "creating",
            ["pid"] = 0,
            ["bundle"] = ws["bundle"],
            ["annotations"] = new Dictionary<string, string> { ["org.blockoverlay.quota"] = "1M" },
        }));

        var created = Hook(ws, server, "create");
        Assert.That(created.ExitCode, Is.Zero, created.ToString);
        string uri = File.ReadAllText(ws["bundle/blockoverlay.uri"]).Trim();
        Assert.That(uri, Is.EqualTo(server.UnixUri(Id)));

        // Attach as the VMM would (qemu's NBD client), write and fsync.
        var attached = Tool.Run("/usr/bin/qemu-io", ["-f", "raw", "-t", "writeback", uri, "-c", "write -P 0x5a 0 64k", "-c", "flush"],
            TimeSpan.FromSeconds(30));
        Assert.That(attached.ExitCode, Is.Zero, attached.ToString);
        using (var stat = JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", Id, "--json", "--store", ws.StorePath).Stdout))
        {
            Assert.Multiple(() =>
            {
                Assert.That(stat.RootElement.GetProperty("base").GetString(), Is.EqualTo(ws["rootfs.raw"]), "the base BLOCKOVERLAY_BASE names");
                Assert.That(stat.RootElement.GetProperty("quota").GetInt64(), Is.EqualTo(1 << 20), "the container's annotation");
                Assert.That(stat.RootElement.GetProperty("flushDataBytes").GetInt64(), Is.EqualTo(65536), "the guest's fsync");
            });
        }

        var deleted = Hook(ws, server, "delete");
        Assert.That(deleted.ExitCode, Is.Zero, deleted.ToString);
        Assert.Multiple(() =>
        {
            Assert.That(ws.ListInstances(), Is.Empty, "the container's disk is gone");
            Assert.That(File.Exists(ws["bundle/blockoverlay.uri"]), Is.False);
        });

        var again = Hook(ws, server, "delete");
        Assert.That(again.ExitCode, Is.Zero, "a removal with no disk left (a retry, a failed create) is no failure\n" + again);
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void The_hook_refuses_a_container_with_no_base_image_and_says_how_to_name_one()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws);
        File.WriteAllText(ws["state.json"], $$"""{"ociVersion":"1.2.0","id":"{{Id}}","status":"creating","bundle":"{{ws.Path}}"}""");

        var result = Hook(ws, server, "create", baseImage: "");
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
            Assert.That(result.Stderr, Does.Contain("set BLOCKOVERLAY_BASE or the annotation org.blockoverlay.base"));
            Assert.That(ws.ListInstances(), Is.Empty);
        });
    }

    /// <summary>The hook as a runtime runs it: settings in its environment, the state on its standard input.</summary>
    private static ToolResult Hook(StoreWorkspace ws, StoreServer server, string verb, string baseImage = "rootfs") =>
        Tool.Run("/usr/bin/env", [
            "BLOCKOVERLAY=" + ServerProcess.BinaryPath, "BLOCKOVERLAY_STORE=" + ws.StorePath, "BLOCKOVERLAY_SOCKET=" + server.SocketPath,
            "BLOCKOVERLAY_BASE=" + baseImage,
            "/bin/bash", "-c", "exec bash \"$0\" \"$1\" < \"$2\"",
            Path.Combine(ServerProcess.RepositoryRoot, "docs", "examples", "runtime-hook.sh"), verb, ws["state.json"]],
            TimeSpan.FromSeconds(30));
}
