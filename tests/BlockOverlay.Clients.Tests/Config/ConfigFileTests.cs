using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Config;

/// <summary>
/// Config files the real binary serves: a file export and a listener named by paths relative
/// to the config, and the example in docs/ (with the keys that name this machine's paths
/// and ports overridden by flags, as an operator trying it would).
/// </summary>
[NonParallelizable]
public class ConfigFileTests
{
    private StoreWorkspace _ws = null!;

    [SetUp]
    public void CreateWorkspace() => _ws = new StoreWorkspace();

    [TearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    [Test]
    public void A_file_export_and_a_socket_relative_to_the_config_are_found_from_another_directory()
    {
        string directory = _ws["etc"];
        Directory.CreateDirectory(Path.Combine(directory, "images"));
        byte[] image = _ws.WriteRandomFile("etc/images/disk.raw", 3 << 20, seed: 61);
        File.WriteAllText(Path.Combine(directory, "config.json"), """
            {
              "exports": ["disk=file:images/disk.raw:ro"],
              "listen": ["unix:nbd.sock"],
            }
            """);
        string socket = Path.Combine(directory, "nbd.sock");

        using var server = ConfiguredServer.Start(socket, ["--config", Path.Combine(directory, "config.json")], workingDirectory: _ws.Path);
        var size = ClientTool.Nbdinfo.Run("--size", $"nbd+unix:///disk?socket={socket}");
        var copy = ClientTool.Nbdcopy.Run($"nbd+unix:///disk?socket={socket}", _ws["copy.raw"]);

        Assert.That(size.Stdout.Trim(), Is.EqualTo(image.Length.ToString(CultureInfo.InvariantCulture)), size.ToString);
        Assert.That(copy.ExitCode, Is.Zero, copy.ToString);
        Assert.That(File.ReadAllBytes(_ws["copy.raw"]), Is.EqualTo(image), "the export's content is not the image's");
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public void The_example_config_serves_once_its_store_listeners_and_metrics_port_are_overridden()
    {
        _ws.CreateStore("32M");
        _ws.CreateInstance("example", null, "4M");
        string example = Path.Combine(ServerProcess.RepositoryRoot, "docs", "config.example.json");
        string socket = _ws["nbd.sock"];

        using var server = ConfiguredServer.Start(socket,
            ["--config", example, "--store", _ws.StorePath, "--listen", "unix:" + socket, "--metrics", "tcp:127.0.0.1:0"]);
        var list = ClientTool.Nbdinfo.Run("--list", $"nbd+unix:///?socket={socket}");

        Assert.That(list.Stdout, Does.Contain("export=\"example\":"), list.ToString);
        Assert.That(server.StderrLines, Has.Some.EndsWith($"config {example}"), server.ToString);
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public async Task The_configs_connection_limit_is_the_servers()
    {
        string directory = _ws["etc"];
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), """
            { "exports": ["disk=memory:1M"], "listen": ["unix:nbd.sock"], "limits": { "connections": 1 } }
            """);
        string socket = Path.Combine(directory, "nbd.sock");
        using var server = ConfiguredServer.Start(socket, ["--config", Path.Combine(directory, "config.json")]);

        // The first connection holds the only place (a client waits in the handshake); a second is closed at once.
        using var first = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, 0);
        await first.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
        var greeting = new byte[18];
        Assert.That(await first.ReceiveAsync(greeting), Is.EqualTo(18), "the first client is greeted");
        var second = ClientTool.Nbdinfo.Run("--size", $"nbd+unix:///disk?socket={socket}");

        Assert.That(second.ExitCode, Is.Not.Zero, second.ToString);
        Assert.That(server.StderrLines, Has.Some.Contains("limit of 1 connections"), server.ToString);
        first.Dispose();
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }
}
