using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Config;

/// <summary>
/// <c>serve --config</c> against the real binary: the config's store and listener, with
/// relative paths that follow the config file rather than the working directory; a
/// <c>--listen</c> or <c>--store</c> flag replacing its key; <c>$BLOCKOVERLAY_CONFIG</c>
/// naming the config when <c>--config</c> does not. Which store is served is told by the
/// export list a real client (nbdinfo) reads: each store holds one instance named after it.
/// </summary>
[NonParallelizable]
public class ConfigPrecedenceTests
{
    private StoreWorkspace _ws = null!;
    private string _config = null!;

    /// <summary>The server runs here, where none of the config's relative paths exist.</summary>
    private string Elsewhere => _ws["elsewhere"];

    [OneTimeSetUp]
    public void CreateTwoStoresAndAConfig()
    {
        _ws = new StoreWorkspace();
        Directory.CreateDirectory(Elsewhere);
        foreach (string name in new[] { "from-config", "from-flag" })
        {
            StoreWorkspace.CliOk("store", "create", _ws[$"{name}.store"], "--size", "32M");
            StoreWorkspace.CliOk("instance", "create", name, "--size", "4M", "--store", _ws[$"{name}.store"]);
        }

        _config = _ws["config.json"];
        File.WriteAllText(_config, """
            {
              // relative: to this file's directory
              "store": "from-config.store",
              "listen": ["unix:config.sock"],
            }
            """);
    }

    [OneTimeTearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    [Test]
    public void The_config_gives_the_store_and_the_listener_relative_to_its_own_directory()
    {
        using var server = ConfiguredServer.Start(_ws["config.sock"], ["--config", _config], workingDirectory: Elsewhere);

        Assert.That(Exports(_ws["config.sock"]), Is.EqualTo(new[] { "from-config" }), server.ToString);
        Assert.That(Directory.GetFileSystemEntries(Elsewhere), Is.Empty, "something was made in the working directory");
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public void A_listen_flag_replaces_the_configs_listeners_and_the_store_still_comes_from_the_config()
    {
        using var server = ConfiguredServer.Start(_ws["flag.sock"], ["--config", _config, "--listen", "unix:" + _ws["flag.sock"]]);

        Assert.That(File.Exists(_ws["config.sock"]), Is.False, "the server also listened where the config says");
        Assert.That(Exports(_ws["flag.sock"]), Is.EqualTo(new[] { "from-config" }), server.ToString);
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public void A_store_flag_replaces_the_configs_store()
    {
        using var server = ConfiguredServer.Start(_ws["config.sock"], ["--config", _config, "--store", _ws["from-flag.store"]]);

        Assert.That(Exports(_ws["config.sock"]), Is.EqualTo(new[] { "from-flag" }), server.ToString);
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public void The_environment_names_the_config_when_the_command_line_does_not()
    {
        using var server = ConfiguredServer.Start(_ws["config.sock"], [], configVariable: _config);

        Assert.That(Exports(_ws["config.sock"]), Is.EqualTo(new[] { "from-config" }), server.ToString);
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    [Test]
    public void The_config_flag_beats_the_environment()
    {
        File.WriteAllText(_ws["broken.json"], """{ "stroe": "typo.store" }""");

        using var server = ConfiguredServer.Start(_ws["config.sock"], ["--config", _config], configVariable: _ws["broken.json"]);

        Assert.That(Exports(_ws["config.sock"]), Is.EqualTo(new[] { "from-config" }), server.ToString);
        Assert.That(server.Stop(), Is.Zero, server.ToString);
    }

    /// <summary>The export names nbdinfo lists on the unix socket, in order (from its lines <c>export="NAME":</c>).</summary>
    private static string[] Exports(string socketPath)
    {
        const string Head = "export=\"", Tail = "\":";
        var list = ClientTool.Nbdinfo.Run("--list", $"nbd+unix:///?socket={socketPath}");
        Assert.That(list.ExitCode, Is.Zero, list.ToString);
        return [.. list.Stdout.Split('\n')
            .Where(line => line.StartsWith(Head, StringComparison.Ordinal) && line.EndsWith(Tail, StringComparison.Ordinal))
            .Select(line => line[Head.Length..^Tail.Length])];
    }
}
