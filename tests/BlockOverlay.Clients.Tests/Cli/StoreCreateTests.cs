using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary><c>blockoverlay store create</c>: the store it makes is the one asked for.</summary>
public class StoreCreateTests
{
    /// <summary>
    /// The journal is 1/64 of the store by default (4 MiB of 256 MiB), or what --journal asks for.
    /// </summary>
    [Test]
    public void A_store_gets_the_journal_size_asked_for()
    {
        using var ws = new StoreWorkspace();
        StoreWorkspace.CliOk("store", "create", ws["default.store"], "--size", "256M");
        StoreWorkspace.CliOk("store", "create", ws["small.store"], "--size", "256M", "--journal", "1M");

        Assert.That(StoreWorkspace.CliOk("store", "info", ws["default.store"]).Stdout, Does.Contain("journal:          4194304 bytes"));
        Assert.That(StoreWorkspace.CliOk("store", "info", ws["small.store"]).Stdout, Does.Contain("journal:          1048576 bytes"));
    }
}
