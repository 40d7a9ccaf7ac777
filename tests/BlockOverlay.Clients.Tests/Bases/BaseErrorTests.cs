using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Bases;

/// <summary>
/// Bad input to <c>blockoverlay base …</c>: each is one line on standard error
/// (<c>blockoverlay base COMMAND: reason</c>), nothing on standard output, exit code 1, and
/// nothing half-done: no file appears or goes (no temp file, no lock file, no import
/// directory), and the registry is byte for byte as it was.
/// </summary>
[NonParallelizable]
public class BaseErrorTests
{
    private StoreWorkspace _ws = null!;

    [OneTimeSetUp]
    public void CreateStoreWithTwoBasesAndAnInstance()
    {
        _ws = new StoreWorkspace();
        _ws.CreateStore("32M");
        _ws.WriteRandomFile("base.raw", 1 << 20, seed: 101);
        BaseTestKit.Add(_ws, "existing", _ws["base.raw"]);
        BaseTestKit.Add(_ws, "copied", _ws["base.raw"], import: true);
        _ws.CreateInstance("user", _ws["base.raw"]);
        Directory.CreateDirectory(_ws["directory"]);
    }

    [OneTimeTearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    // Arguments are split at spaces; {store} {base} {dir} are paths, {empty} is "".
    [TestCase("base add", "a base named 'existing' already exists", "base add existing {base} --store {store}")]
    [TestCase("base add", "a base named 'copied' already exists", "base add copied {base} --import --store {store}")]
    [TestCase("base add", "{dir}/missing.raw: no such image", "base add fresh {dir}/missing.raw --store {store}")]
    [TestCase("base add", "{dir}/missing.raw: no such image", "base add fresh {dir}/missing.raw --import --store {store}")]
    [TestCase("base add", "{dir}/directory is a directory", "base add fresh {dir}/directory --store {store}")]
    [TestCase("base add", "/dev/null is not a regular file", "base add fresh /dev/null --store {store}")]
    [TestCase("base add", "/dev/null is not a regular file", "base add fresh /dev/null --import --store {store}")]
    [TestCase("base add", "cannot read nbd+unix:///x?socket={dir}/nobody.sock", "base add fresh nbd+unix:///x?socket={dir}/nobody.sock --import --store {store}")]
    [TestCase("base add", "cannot read nbd://127.0.0.1:1/x", "base add fresh nbd://127.0.0.1:1/x --import --store {store}")]
    [TestCase("base add", "can only be copied in (add --import)", "base add fresh nbd://127.0.0.1:1/x --store {store}")]
    [TestCase("base add", "'a/b' cannot be a base name", "base add a/b {base} --store {store}")]
    [TestCase("base add", "'.hidden' cannot be a base name", "base add .hidden {base} --import --store {store}")]
    [TestCase("base add", "'' cannot be a base name", "base add {empty} {base} --store {store}")]
    [TestCase("base add", "{dir}/nothing: no such store", "base add fresh {base} --store {dir}/nothing")]
    [TestCase("base list", "{dir}/nothing: no such store", "base list --store {dir}/nothing")]
    [TestCase("base remove", "no base named 'nope'", "base remove nope --store {store}")]
    [TestCase("base remove", "base 'existing' is in use by instance user", "base remove existing --store {store}")]
    public void Bad_input_is_one_line_exit_1_and_nothing_changes(string command, string reason, string commandLine)
    {
        var before = BaseTestKit.Snapshot(_ws);

        var result = StoreWorkspace.Cli(Arguments(commandLine));

        BaseTestKit.AssertOneLineError(result, command, Expand(reason));
        Assert.That(BaseTestKit.Snapshot(_ws), Is.EqualTo(before));
    }

    [Test]
    public void Removing_an_unknown_base_of_a_store_without_a_registry_creates_no_registry_files()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        var before = BaseTestKit.Snapshot(ws);

        BaseTestKit.AssertOneLineError(StoreWorkspace.Cli("base", "remove", "nope", "--store", ws.StorePath), "base remove", "no base named 'nope'");
        Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before), "no lock file, no registry");
    }

    [Test]
    public void A_damaged_registry_is_reported_and_left_for_the_user_to_repair()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("base.raw", 4096, seed: 102);
        File.WriteAllText(BaseTestKit.RegistryPath(ws), "{ \"version\": 1, \"bases\": [ { \"name\": \"x\" ");
        var before = BaseTestKit.Snapshot(ws);

        BaseTestKit.AssertOneLineError(StoreWorkspace.Cli("base", "list", "--store", ws.StorePath), "base list", "is damaged");
        BaseTestKit.AssertOneLineError(StoreWorkspace.Cli("base", "add", "y", ws["base.raw"], "--store", ws.StorePath), "base add", "is damaged");
        Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before));
    }

    private string[] Arguments(string commandLine) => [.. commandLine.Split(' ').Select(Expand)];

    private string Expand(string text) =>
        text.Replace("{store}", _ws.StorePath, StringComparison.Ordinal)
            .Replace("{base}", _ws["base.raw"], StringComparison.Ordinal)
            .Replace("{dir}", _ws.Path, StringComparison.Ordinal)
            .Replace("{empty}", "", StringComparison.Ordinal);
}
