using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// Bad input to <c>blockoverlay store …</c> and <c>instance …</c>: each is one line on
/// standard error (<c>blockoverlay COMMAND: reason</c>), nothing on standard output, exit
/// code 1, and nothing half-done: the store's instances are as before, no file appears,
/// a file that is not a store is left as it was.
/// </summary>
[NonParallelizable]
public class CliErrorTests
{
    private StoreWorkspace _ws = null!;
    private string _instancesBefore = null!;

    [OneTimeSetUp]
    public void CreateStoreWithTwoInstances()
    {
        _ws = new StoreWorkspace();
        _ws.CreateStore("32M");
        _ws.WriteRandomFile("base.raw", 1 << 20, seed: 51);
        _ws.WriteRandomFile("random.bin", 1 << 20, seed: 52);
        _ws.CreateInstance("existing", _ws["base.raw"]);
        _ws.CreateInstance("zeros", null, "4M");
        _instancesBefore = List();
        Assert.That(_instancesBefore.Split('\n', StringSplitOptions.RemoveEmptyEntries), Has.Length.EqualTo(2));
    }

    [OneTimeTearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    // Arguments are split at spaces; {store} {base} {dir} {random} are paths, {empty} is "".
    [TestCase("instance create", "already exists", "instance create existing --size 4M --store {store}")]
    [TestCase("instance create", "'a/b' cannot be an instance name", "instance create a/b --size 4M --store {store}")]
    [TestCase("instance create", "'-x' cannot be an instance name", "instance create -x --size 4M --store {store}")]
    [TestCase("instance create", "'' cannot be an instance name", "instance create {empty} --size 4M --store {store}")]
    [TestCase("instance create", "'.hidden' cannot be an instance name", "instance create .hidden --size 4M --store {store}")]
    [TestCase("instance create", "more than 64", "instance create a123456789b123456789c123456789d123456789e123456789f123456789g1234 --size 4M --store {store}")]
    [TestCase("instance create", "multiple of 4096", "instance create fresh --size 5000 --store {store}")]
    [TestCase("instance create", "multiple of 4096", "instance create fresh --base {base} --size 4095 --store {store}")]
    [TestCase("instance create", "multiple of 4096", "instance create fresh --size 0 --store {store}")]
    [TestCase("instance create", "'12Q' is not a size", "instance create fresh --size 12Q --store {store}")]
    [TestCase("instance create", "missing.raw", "instance create fresh --base {dir}/missing.raw --store {store}")]
    [TestCase("instance create", "--base", "instance create fresh --store {store}")]
    [TestCase("instance delete", "no instance named 'nope'", "instance delete nope --store {store}")]
    [TestCase("store create", "already exists", "store create {store} --size 64M")]
    public void Bad_input_is_one_line_exit_1_and_the_store_is_unchanged(string command, string reason, string commandLine)
    {
        var storeWasThere = File.Exists(_ws.StorePath);

        var result = StoreWorkspace.Cli(Arguments(commandLine));

        AssertOneLineError(result, command, reason);
        Assert.That(storeWasThere && File.Exists(_ws.StorePath), Is.True);
        Assert.That(List(), Is.EqualTo(_instancesBefore), "instance list after the failed command");
    }

    [TestCase("instance list", "instance list --store {random}")]
    [TestCase("instance create", "instance create fresh --size 4M --store {random}")]
    [TestCase("instance delete", "instance delete existing --store {random}")]
    [TestCase("store info", "store info {random}")]
    [TestCase("store check", "store check {random}")]
    [TestCase("store check", "store check {random} --repair")]
    public void A_file_that_is_not_a_store_is_refused_by_its_superblock_and_left_alone(string command, string commandLine)
    {
        var hash = StoreWorkspace.Sha256(_ws["random.bin"]);

        var result = StoreWorkspace.Cli(Arguments(commandLine));

        AssertOneLineError(result, command, "superblock");
        Assert.That(result.Stderr, Does.Contain("no store"));
        Assert.That(StoreWorkspace.Sha256(_ws["random.bin"]), Is.EqualTo(hash), "the file was written");
    }

    [TestCase("instance list", "instance list --store {dir}/nothing")]
    [TestCase("instance create", "instance create fresh --size 4M --store {dir}/nothing")]
    [TestCase("instance delete", "instance delete existing --store {dir}/nothing")]
    [TestCase("store info", "store info {dir}/nothing")]
    [TestCase("store check", "store check {dir}/nothing")]
    public void A_missing_store_is_reported_and_not_created(string command, string commandLine)
    {
        var result = StoreWorkspace.Cli(Arguments(commandLine));

        AssertOneLineError(result, command, "no such store");
        Assert.That(File.Exists(_ws["nothing"]), Is.False, "the command created the store path");
    }

    // {new} is a path of this workspace that does not exist, a different one for each case.
    [TestCase("store create {random} --size 64M", "already exists")]
    [TestCase("store create {new} --size 12Q", "'12Q' is not a size")]
    [TestCase("store create {new} --size 100000", "multiple of 4096")]
    [TestCase("store create {new} --size 64K", "at least")]
    [TestCase("store create {new}/fresh.store --size 64M", "No such file or directory")]
    [TestCase("store create {new} --size 64M --journal 100000", "multiple of 4096")]
    [TestCase("store create {new} --size 64M --journal 64K", "at least 256K")]
    [TestCase("store create {new} --size 64M --journal lots", "'lots' is not a size")]
    [TestCase("store create {new} --size 1M --journal 1M", "a store needs at least")]
    public void Store_create_refuses_without_leaving_or_touching_a_file(string commandLine, string reason)
    {
        var hash = StoreWorkspace.Sha256(_ws["random.bin"]);
        var fresh = _ws[$"fresh-{Guid.NewGuid():N}"];

        var result = StoreWorkspace.Cli(Arguments(commandLine.Replace("{new}", fresh, StringComparison.Ordinal)));

        AssertOneLineError(result, "store create", reason);
        Assert.That(Path.Exists(fresh), Is.False, "a half-created store file was left behind");
        Assert.That(StoreWorkspace.Sha256(_ws["random.bin"]), Is.EqualTo(hash), "an existing file was written");
    }

    [Test]
    public void A_served_store_refuses_offline_store_commands_and_takes_instance_commands_through_the_server()
    {
        using (var server = StoreServer.Start(_ws))
        {
            var info = StoreWorkspace.Cli("store", "info", _ws.StorePath);
            AssertOneLineError(info, "store info", "in use");
            Assert.That(info.Stderr, Does.Contain("lock"));
            AssertOneLineError(StoreWorkspace.Cli("store", "check", _ws.StorePath), "store check", "in use");
            AssertOneLineError(StoreWorkspace.Cli("store", "check", _ws.StorePath, "--repair"), "store check", "in use");

            // Instance commands reach the running server through its control socket.
            Assert.That(StoreWorkspace.CliOk("instance", "list", "--store", _ws.StorePath).Stdout, Is.EqualTo(_instancesBefore),
                "instance list through the server");
            var list = ClientTool.Nbdinfo.Run("--list", server.UnixUri(""));
            Assert.That(list.Stdout, Does.Contain("export=\"existing\"").And.Contain("export=\"zeros\""), () => $"{list}\n{server}");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        Assert.That(List(), Is.EqualTo(_instancesBefore), "instance list once the server stopped");
    }

    private string List() => StoreWorkspace.CliOk("instance", "list", "--store", _ws.StorePath).Stdout;

    private string[] Arguments(string commandLine) =>
        commandLine.Split(' ')
            .Select(a => a.Replace("{store}", _ws.StorePath, StringComparison.Ordinal)
                .Replace("{base}", _ws["base.raw"], StringComparison.Ordinal)
                .Replace("{random}", _ws["random.bin"], StringComparison.Ordinal)
                .Replace("{dir}", _ws.Path, StringComparison.Ordinal)
                .Replace("{empty}", "", StringComparison.Ordinal))
            .ToArray();

    private static void AssertOneLineError(ToolResult result, string command, string reason)
    {
        var lines = result.Stderr.TrimEnd('\n').Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
            Assert.That(lines, Has.Length.EqualTo(1), () => $"stderr must be one line\n{result}");
            Assert.That(lines[0], Does.StartWith($"blockoverlay {command}: "), result.ToString);
            Assert.That(result.Stderr, Does.Contain(reason), result.ToString);
            Assert.That(result.Stdout, Is.Empty, result.ToString);
        });
    }
}
