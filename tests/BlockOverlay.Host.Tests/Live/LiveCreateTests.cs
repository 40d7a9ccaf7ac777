using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Host.Live;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>A live create whose name a plain export of the server already has is refused before the store makes the instance.</summary>
[TestFixture]
public sealed class LiveCreateTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-live-create-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

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
