using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Config;

/// <summary>
/// A config with a mistake stops <c>serve</c> before it serves anything: one line on
/// standard error naming the file and the key, nothing on standard output, exit code 1, and
/// no socket made where the config says to listen.
/// </summary>
[NonParallelizable]
public class ConfigErrorTests
{
    private StoreWorkspace _ws = null!;

    [OneTimeSetUp]
    public void CreateWorkspace() => _ws = new StoreWorkspace();

    [OneTimeTearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    // Each config also asks for a listener, which must not appear.
    [TestCase("""{ "listen": ["unix:nbd.sock"], "lsten": ["unix:other.sock"] }""", "unknown key 'lsten'")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "cache": { "instanceDirtyLimt": "1G" } }""", "unknown key 'cache.instanceDirtyLimt'")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "log": { "format": "yaml" } }""", "log.format: 'yaml' is not a log format")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "cache": { "globalDirtyLimit": "4GB" } }""", "cache.globalDirtyLimit: '4GB' is ambiguous")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "cache": { "instanceDirtyLimit": "lots" } }""", "cache.instanceDirtyLimit: 'lots' is not a size")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "cache": { "backgroundRatio": 2 } }""", "cache: the background ratio must be in (0, 1]")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "cache": { "globalDirtyLimit": "64M" } }""", "cache: the global dirty limit is below the per-instance limit")]
    [TestCase("""{ "listen": ["unix:nbd.sock"], "exports": ["d=memory:1M"], }  }""", "not valid JSON: line 1: ")]
    public void A_bad_config_is_one_line_naming_the_problem_and_exit_1(string json, string problem)
    {
        string config = _ws[$"config-{Guid.NewGuid():N}.json"];
        File.WriteAllText(config, json);

        var result = StoreWorkspace.Cli("serve", "--config", config);

        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
            Assert.That(result.Stdout, Is.Empty, result.ToString);
            Assert.That(result.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), result.ToString);
            Assert.That(result.Stderr, Does.StartWith($"blockoverlay serve: config {config}: {problem}"), result.ToString);
            Assert.That(File.Exists(_ws["nbd.sock"]), Is.False, "the server listened before refusing its config");
        });
    }

    [Test]
    public void A_missing_config_is_one_line_naming_it()
    {
        var result = StoreWorkspace.Cli("serve", "--config", _ws["absent.json"]);

        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
        Assert.That(result.Stderr, Does.StartWith($"blockoverlay serve: config {_ws["absent.json"]}: cannot read it").And.EndWith("\n"));
        Assert.That(result.Stderr.TrimEnd('\n'), Does.Not.Contain('\n'), result.ToString);
    }

    [TestCase("--log-format", "xml", "--log-format: 'xml' is not a log format")]
    [TestCase("--log-level", "chatty", "--log-level: 'chatty' is not a log level")]
    public void A_bad_log_flag_is_one_line_naming_the_flag(string flag, string value, string problem)
    {
        var result = StoreWorkspace.Cli("serve", "--listen", "unix:" + _ws["nbd.sock"], flag, value);

        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
        Assert.That(result.Stderr, Is.EqualTo($"blockoverlay serve: {problem}: use {(flag == "--log-level" ? "debug, information, warning or error" : "text or json")}\n"));
        Assert.That(File.Exists(_ws["nbd.sock"]), Is.False);
    }

    [Test]
    public void Two_exports_of_one_name_are_one_line_and_nothing_is_served()
    {
        var result = StoreWorkspace.Cli("serve", "--listen", "unix:" + _ws["nbd.sock"], "--export", "d=memory:1M", "--export", "d=memory:2M");

        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
        Assert.That(result.Stderr, Is.EqualTo("blockoverlay serve: an export named 'd' already exists\n"), result.ToString);
        Assert.That(File.Exists(_ws["nbd.sock"]), Is.False);
    }
}
