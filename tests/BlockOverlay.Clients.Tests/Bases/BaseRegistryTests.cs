using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Bases;

/// <summary>
/// <c>base add</c>, <c>list</c> and <c>remove</c> of images referred to in place: the
/// registry beside the store names them, counts the instances made on each, and refuses to
/// forget one in use — offline and while a server holds the store (the registry has its own
/// lock, so it is edited either way; "in use" then comes through the server).
/// </summary>
public class BaseRegistryTests
{
    private const int ImageSize = 1 << 20;

    [Test]
    public void Add_list_and_remove_a_referenced_image_which_stays_where_it_is()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 81);
        var hash = StoreWorkspace.Sha256(ws["rootfs.raw"]);

        var added = BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"]);

        Assert.That(added.Stdout, Does.Contain("added base 'rootfs'").And.Contain(ws["rootfs.raw"]));
        Assert.That(BaseTestKit.List(ws), Is.EqualTo(new[] { new[] { "rootfs", "1M", ws["rootfs.raw"], "0" } }));
        using (var registry = JsonDocument.Parse(File.ReadAllText(BaseTestKit.RegistryPath(ws))))
        {
            var entry = registry.RootElement.GetProperty("bases")[0];
            Assert.That(entry.GetProperty("path").GetString(), Is.EqualTo(ws["rootfs.raw"]));
            Assert.That(entry.GetProperty("imported").GetBoolean(), Is.False);
        }

        var removed = StoreWorkspace.CliOk("base", "remove", "rootfs", "--store", ws.StorePath);

        Assert.That(removed.Stdout, Does.Contain("removed base 'rootfs'"));
        Assert.That(BaseTestKit.List(ws), Is.Empty);
        Assert.That(StoreWorkspace.Sha256(ws["rootfs.raw"]), Is.EqualTo(hash), "a referenced image is the user's: never touched");
    }

    [Test]
    public void Instance_create_takes_a_registered_base_name_and_records_the_images_path()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 84);
        BaseTestKit.Add(ws, "web", ws["rootfs.raw"]);

        StoreWorkspace.CliOk("instance", "create", "site", "--base", "web", "--store", ws.StorePath);
        var unknown = StoreWorkspace.Cli("instance", "create", "other", "--base", "nosuchbase", "--store", ws.StorePath);

        Assert.That(ws.ListInstances().Single(), Is.EqualTo(new[] { "site", "1M", "0", "isolated", ws["rootfs.raw"] }));
        Assert.That(unknown.ExitCode, Is.EqualTo(1));
        Assert.That(unknown.Stderr, Does.Contain("'nosuchbase' is neither a base registered"), unknown.ToString);
        Assert.That(BaseTestKit.List(ws).Single()[3], Is.EqualTo("1"), "the base counts its instance");
    }

    [Test]
    public void A_base_registered_through_a_symbolic_link_is_in_use_by_an_instance_made_on_the_real_file()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 85);
        File.CreateSymbolicLink(ws["link.raw"], ws["rootfs.raw"]);
        BaseTestKit.Add(ws, "rootfs", ws["link.raw"]);
        ws.CreateInstance("web", ws["rootfs.raw"]);

        Assert.That(BaseTestKit.List(ws).Single()[3], Is.EqualTo("1"), "the instance counts, whichever path it was made with");
        var refused = StoreWorkspace.Cli("base", "remove", "rootfs", "--store", ws.StorePath);
        BaseTestKit.AssertOneLineError(refused, "base remove", "in use by instance web");
    }

    [Test]
    public void A_base_an_instance_is_made_on_is_counted_and_cannot_be_removed_until_the_instance_is_deleted()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 82);
        ws.WriteRandomFile("other.raw", ImageSize, seed: 83);
        BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"]);
        BaseTestKit.Add(ws, "other", ws["other.raw"]);
        ws.CreateInstance("web", ws["rootfs.raw"]);
        ws.CreateInstance("db", ws["rootfs.raw"]);
        ws.CreateInstance("blank", null, "1M");

        Assert.That(BaseTestKit.List(ws).Select(row => (row[0], row[3])), Is.EqualTo(new[] { ("rootfs", "2"), ("other", "0") }));
        var before = BaseTestKit.Snapshot(ws);

        var refused = StoreWorkspace.Cli("base", "remove", "rootfs", "--store", ws.StorePath);

        BaseTestKit.AssertOneLineError(refused, "base remove", "in use by instances web, db");
        Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before));

        StoreWorkspace.CliOk("instance", "delete", "web", "--store", ws.StorePath);
        StoreWorkspace.CliOk("instance", "delete", "db", "--store", ws.StorePath);
        StoreWorkspace.CliOk("base", "remove", "rootfs", "--store", ws.StorePath);
        Assert.That(BaseTestKit.List(ws).Select(row => row[0]), Is.EqualTo(new[] { "other" }));
    }

    [Test]
    public void While_a_server_holds_the_store_bases_are_edited_and_in_use_is_learnt_from_the_server()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 84);
        using var server = StoreServer.Start(ws);

        BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"]);
        StoreWorkspace.CliOk("instance", "create", "live", "--base", ws["rootfs.raw"], "--store", ws.StorePath);

        Assert.That(BaseTestKit.List(ws), Is.EqualTo(new[] { new[] { "rootfs", "1M", ws["rootfs.raw"], "1" } }), server.ToString);
        BaseTestKit.AssertOneLineError(StoreWorkspace.Cli("base", "remove", "rootfs", "--store", ws.StorePath), "base remove", "in use by instance live");

        StoreWorkspace.CliOk("instance", "delete", "live", "--store", ws.StorePath);
        StoreWorkspace.CliOk("base", "remove", "rootfs", "--store", ws.StorePath);
        Assert.That(BaseTestKit.List(ws), Is.Empty);
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void Concurrent_adds_take_turns_on_the_registry_lock_and_none_is_lost()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", ImageSize, seed: 85);
        string[] names = [.. Enumerable.Range(0, 8).Select(i => $"b{i}")];

        var results = names.AsParallel().WithDegreeOfParallelism(names.Length)
            .Select(name => StoreWorkspace.Cli("base", "add", name, ws["rootfs.raw"], "--store", ws.StorePath))
            .ToList();

        Assert.That(results.Select(r => r.ExitCode), Is.All.Zero, () => string.Join('\n', results));
        Assert.That(BaseTestKit.List(ws).Select(row => row[0]), Is.EquivalentTo(names));
    }
}
