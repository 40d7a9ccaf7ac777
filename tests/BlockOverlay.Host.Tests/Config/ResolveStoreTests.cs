using BlockOverlay.Host.Config;

namespace BlockOverlay.Host.Tests.Config;

/// <summary>
/// Which config is read (<c>--config</c>, else <c>$BLOCKOVERLAY_CONFIG</c>) and the store the
/// <c>instance</c> commands work on (<c>--store</c>, else the config's).
/// </summary>
public class ResolveStoreTests
{
    [TestCase("flag.json", "env.json", ExpectedResult = "flag.json")]
    [TestCase(null, "env.json", ExpectedResult = "env.json")]
    [TestCase("", "env.json", ExpectedResult = "env.json")]
    [TestCase(null, "", ExpectedResult = null)]
    [TestCase(null, null, ExpectedResult = null)]
    public string? The_config_flag_beats_the_environment_and_empty_means_not_given(string? flag, string? environment) =>
        HostConfig.Locate(flag, environment);

    [Test]
    public void The_store_flag_wins_and_the_config_is_then_not_read()
    {
        Assert.That(HostConfig.ResolveStore("flag.store", "/no/such/config.json"), Is.EqualTo("flag.store"));
    }

    [Test]
    public void Without_the_flag_the_configs_store_is_used_relative_to_the_config()
    {
        using var config = new TemporaryFile("""{ "store": "stores/main" }""");

        Assert.That(HostConfig.ResolveStore(null, config.Path),
            Is.EqualTo(Path.Combine(Path.GetDirectoryName(config.Path)!, "stores", "main")));
    }

    [Test]
    public void A_config_without_a_store_says_so_and_what_to_do()
    {
        using var config = new TemporaryFile("""{ "listen": ["unix:x.sock"] }""");

        Assert.That(Assert.Throws<FormatException>(() => HostConfig.ResolveStore(null, config.Path))!.Message,
            Is.EqualTo($"the config {config.Path} has no 'store': name the store with --store PATH or in the config file (--config)"));
    }

    [Test]
    public void A_broken_config_is_reported_not_skipped()
    {
        using var config = new TemporaryFile("""{ "stor": "x" }""");

        Assert.That(Assert.Throws<FormatException>(() => HostConfig.ResolveStore(null, config.Path))!.Message,
            Does.StartWith($"config {config.Path}: unknown key 'stor'"));
    }

    [Test]
    public void With_neither_the_message_says_how_to_name_the_store()
    {
        Assume.That(Environment.GetEnvironmentVariable(HostConfig.EnvironmentVariable), Is.Null.Or.Empty,
            "BLOCKOVERLAY_CONFIG is set in this environment");

        Assert.That(Assert.Throws<FormatException>(() => HostConfig.ResolveStore(null, null))!.Message,
            Is.EqualTo("name the store with --store PATH or in the config file (--config)"));
    }
}
