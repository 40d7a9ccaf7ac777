using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.LibNbd;
using BlockOverlay.Store;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>The blockoverlay:layer meta context: upper, base and zeros told apart, beside base:allocation.</summary>
public class LayerContextTests
{
    private const string Layer = "blockoverlay:layer";
    private const int Block = 4096;
    private string _directory = null!;
    private UpperStore _store = null!;
    private WriteBackCache _cache = null!;
    private TestServer _server = null!;

    [SetUp]
    public async Task Start()
    {
        _directory = Directory.CreateTempSubdirectory("blockoverlay-layer-").FullName;
        string basePath = Path.Combine(_directory, "base.raw");
        await File.WriteAllBytesAsync(basePath, Pattern(8 * Block, 1));   // the base: 8 blocks of data
        var device = new MemoryDevice(16L << 20);
        await UpperStore.CreateAsync(device);
        _store = await UpperStore.OpenAsync(device);
        await using (var image = BaseImage.Open(basePath))
        {
            await _store.CreateInstanceAsync("vm", 16 * Block, await image.IdentifyAsync());
        }

        // Nothing is written back before a flush: block status must see dirty blocks as upper too.
        _cache = new WriteBackCache(_store, CacheOptions.FlushOnly);
        var export = await InstanceExport.OpenAsync(_cache, _store.Find("vm")!);
        _server = new TestServer(("vm", export), ("plain", new MemoryExport(1 << 20)));
    }

    [TearDown]
    public async Task Stop()
    {
        await _server.DisposeAsync();
        await _cache.DisposeAsync();
        await _store.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Test]
    public void Block_status_tells_upper_base_and_zeros_apart_beside_base_allocation()
    {
        using var client = new NbdClient();
        client.AddMetaContext(MetaContexts.BaseAllocation);
        client.AddMetaContext(Layer);
        client.ConnectUri(_server.Uri("vm"));
        Assert.That(client.CanMetaContext(Layer), Is.True);

        client.Pwrite(Pattern(2 * Block, 2), 2 * Block);   // blocks 2-3 become upper
        client.Zero(Block, 5 * Block);                      // block 5 reads as zeros
        var status = client.BlockStatus(16 * Block, 0);

        Assert.That(status[Layer].Select(e => (e.Length, e.Flags)), Is.EqualTo(new[]
        {
            (2u * Block, 2u),  // base
            (2u * Block, 1u),  // upper
            (1u * Block, 2u),  // base
            (1u * Block, 0u),  // zeroed
            (2u * Block, 2u),  // base
            (8u * Block, 0u),  // past the base's end
        }));
        Assert.That(status[MetaContexts.BaseAllocation].Select(e => (e.Length, e.Flags)), Is.EqualTo(new[]
        {
            (5u * Block, 0u),  // base and upper data are both data
            (1u * Block, 3u),  // zeroed: hole, zero
            (2u * Block, 0u),
            (8u * Block, 3u),  // past the base's end
        }));
    }

    [Test]
    public void Only_layered_exports_list_the_layer_context()
    {
        using var client = new NbdClient();
        client.SetOptMode(true);
        client.ConnectUri(_server.Uri("vm"));
        Assert.That(client.OptListMetaContext(), Is.EquivalentTo(new[] { MetaContexts.BaseAllocation, Layer }));

        using var plain = new NbdClient();
        plain.SetOptMode(true);
        plain.ConnectUri(_server.Uri("plain"));
        Assert.That(plain.OptListMetaContext(), Is.EqualTo(new[] { MetaContexts.BaseAllocation }));
    }
}
