using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// Instances made on one base share one open image, checked against the identity once while
/// any of them is open, and again when the base is next opened after all closed.
/// </summary>
[TestFixture]
public sealed class BaseImagesTests
{
    private const int Instances = 50;

    [Test]
    public async Task Fifty_instances_of_one_base_open_it_once_and_read_it_right()
    {
        using var testBase = await TestBase.CreateAsync(seed: 5, 256 << 10);
        var (store, cache) = await OpenStoreAsync();
        var bases = new BaseImages();
        var instances = new List<StoreInstance>();
        for (int i = 0; i < Instances; i++)
        {
            instances.Add(await store.CreateInstanceAsync($"i{i}", 256 << 10, testBase.Identity));
        }

        var exports = await Task.WhenAll(instances.Select(i => InstanceExport.OpenAsync(cache, i, bases)));
        Assert.Multiple(() =>
        {
            Assert.That(bases.Checks, Is.EqualTo(1), "fingerprints taken for fifty instances of one base");
            Assert.That(bases.OpenCount, Is.EqualTo(1), "bases open");
        });

        foreach (var export in exports)
        {
            var bytes = new byte[4096];
            await export.ReadAsync(100_000, bytes);
            Assert.That(bytes, Is.EqualTo(testBase.Bytes.AsSpan(100_000, 4096).ToArray()));
        }

        foreach (var export in exports.Take(Instances - 1))
        {
            await export.DisposeAsync();
        }

        Assert.That(bases.OpenCount, Is.EqualTo(1), "open while one instance is");
        await exports[^1].DisposeAsync();
        Assert.That(bases.OpenCount, Is.Zero, "closed with the last instance");

        await using (var again = await InstanceExport.OpenAsync(cache, instances[0], bases))
        {
            Assert.That(bases.Checks, Is.EqualTo(2), "checked again when opened again");
        }

        await cache.DisposeAsync();
        await store.DisposeAsync();
    }

    [Test]
    public async Task A_base_replaced_while_none_of_its_instances_was_open_is_refused_at_the_next_open()
    {
        using var testBase = await TestBase.CreateAsync(seed: 6, 256 << 10);
        var (store, cache) = await OpenStoreAsync();
        var bases = new BaseImages();
        var instance = await store.CreateInstanceAsync("x", 256 << 10, testBase.Identity);
        await (await InstanceExport.OpenAsync(cache, instance, bases)).DisposeAsync();

        byte[] other = new byte[256 << 10];
        new Random(7).NextBytes(other);
        await File.WriteAllBytesAsync(testBase.Path, other);

        Assert.That(async () => await InstanceExport.OpenAsync(cache, instance, bases), Throws.TypeOf<BaseImageChangedException>());
        Assert.That(bases.OpenCount, Is.Zero, "a failed open is not kept");
        await File.WriteAllBytesAsync(testBase.Path, testBase.Bytes);
        await (await InstanceExport.OpenAsync(cache, instance, bases)).DisposeAsync();
        await cache.DisposeAsync();
        await store.DisposeAsync();
    }

    private static async Task<(UpperStore Store, WriteBackCache Cache)> OpenStoreAsync()
    {
        var device = new MemoryDevice(64 << 20);
        await UpperStore.CreateAsync(device);
        var store = await UpperStore.OpenAsync(device);
        return (store, new WriteBackCache(store, CacheOptions.FlushOnly));
    }
}
