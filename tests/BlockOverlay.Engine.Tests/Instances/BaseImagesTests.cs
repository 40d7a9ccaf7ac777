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

    [Test]
    public async Task A_new_instance_of_an_open_base_takes_its_identity_unread_and_a_replaced_or_resized_file_is_read_again()
    {
        using var testBase = await TestBase.CreateAsync(seed: 8, 256 << 10);
        var (store, cache) = await OpenStoreAsync();
        var bases = new BaseImages();
        Assert.That(await bases.IdentifyAsync(testBase.Path), Is.EqualTo(testBase.Identity));
        Assert.That(bases.Checks, Is.EqualTo(1), "nothing open: read");

        var instance = await store.CreateInstanceAsync("x", 256 << 10, testBase.Identity);
        await using (await InstanceExport.OpenAsync(cache, instance, bases))
        {
            Assert.That(bases.Checks, Is.EqualTo(2), "opened for its first instance: read");
            for (int i = 0; i < 10; i++)
            {
                Assert.That(await bases.IdentifyAsync(testBase.Path), Is.EqualTo(testBase.Identity));
            }

            Assert.That(bases.Checks, Is.EqualTo(2), "ten creates on the open base read nothing");

            // Another file renamed over the path (as image tools replace a file): another inode.
            byte[] other = new byte[256 << 10];
            new Random(9).NextBytes(other);
            string next = testBase.Path + ".new";
            await File.WriteAllBytesAsync(next, other);
            File.Move(next, testBase.Path, overwrite: true);
            var replaced = await bases.IdentifyAsync(testBase.Path);
            Assert.Multiple(() =>
            {
                Assert.That(replaced.Fingerprint, Is.Not.EqualTo(testBase.Identity.Fingerprint), "what is at the path now");
                Assert.That(bases.Checks, Is.EqualTo(3), "a replaced file is read");
            });

            // The same file written shorter in place: same inode, another size.
            await File.WriteAllBytesAsync(testBase.Path, other.AsSpan(0, 128 << 10).ToArray());
            Assert.That((await bases.IdentifyAsync(testBase.Path)).Size, Is.EqualTo(128 << 10));
            Assert.That(bases.Checks, Is.EqualTo(4), "a resized file is read");
        }

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
