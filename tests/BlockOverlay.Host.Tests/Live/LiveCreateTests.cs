using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Host.Live;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>
/// Live creates: a name a plain export of the server already has is refused before the store
/// makes the instance; a base the server holds open is not read again for each new instance.
/// </summary>
[TestFixture]
public sealed class LiveCreateTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-live-create-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public async Task Creates_on_a_base_the_server_holds_open_do_not_read_it_again()
    {
        string store = Path.Combine(_directory, "store");
        await using (var device = await FileDevice.CreateAsync(store, 64L << 20))
        {
            await UpperStore.CreateAsync(device);
        }

        string image = Path.Combine(_directory, "base.raw");
        byte[] bytes = new byte[4 << 20];
        new Random(3).NextBytes(bytes);
        await File.WriteAllBytesAsync(image, bytes);
        await using var host = await StoreHost.OpenAsync(store, new CacheOptions(), new ExportCatalog(), new CapturingLogger());

        Assert.That(await host.RunAsync(new CreateRequest("a", image, null, null, null, []), _ => { }, CancellationToken.None),
            Is.TypeOf<InstanceCreated>());
        long afterFirst = host.Bases.Checks;
        for (int i = 0; i < 10; i++)
        {
            Assert.That(await host.RunAsync(new CreateRequest($"b{i}", image, null, null, null, []), _ => { }, CancellationToken.None),
                Is.TypeOf<InstanceCreated>());
        }

        Assert.Multiple(() =>
        {
            Assert.That(host.Bases.Checks, Is.EqualTo(afterFirst), "ten more instances of the served base read it no more");
            Assert.That(host.Bases.OpenCount, Is.EqualTo(1), "one open base for all of them");
            Assert.That(host.Store.Instances.Select(i => i.Definition.Base!.Fingerprint).Distinct().Count(), Is.EqualTo(1), "one identity");
        });
    }

    [Test]
    public async Task A_name_a_plain_export_has_is_refused_and_no_instance_is_left_behind()
    {
        string store = Path.Combine(_directory, "store");
        await using (var device = await FileDevice.CreateAsync(store, 64L << 20))
        {
            await UpperStore.CreateAsync(device);
        }

        var catalog = new ExportCatalog();
        await using var plain = new MemoryExport(1 << 20);
        catalog.Add("web", plain);
        await using var host = await StoreHost.OpenAsync(store, new CacheOptions(), catalog, new CapturingLogger());

        var answer = await host.RunAsync(new CreateRequest("web", null, "4M", null, null, []), _ => { }, CancellationToken.None);
        var list = await host.RunAsync(new ListRequest(), _ => { }, CancellationToken.None);

        Assert.Multiple(() =>
        {
            Assert.That(answer, Is.TypeOf<CommandFailed>());
            Assert.That(((CommandFailed)answer).Message, Does.Contain("'web'").And.Contain("already serves"));
            Assert.That(((InstanceList)list).Instances, Is.Empty, "the store made no instance");
        });
    }
}
