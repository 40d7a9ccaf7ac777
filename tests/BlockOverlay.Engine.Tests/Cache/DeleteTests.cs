using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// Deleting an instance through its export: its dirty data is freed with it, never written
/// back, and stays out of every write-back while the delete runs; a failed delete changes nothing.
/// </summary>
[TestFixture]
public sealed class DeleteTests
{
    private const byte Doomed = 0xD1, Neighbour = 0xB2;

    /// <summary>Whether a device write holds a whole block of the owner's byte.</summary>
    private static bool HoldsBlockOf(byte[] data, byte owner) =>
        Enumerable.Range(0, data.Length / Block).Any(i => !data.AsSpan(i * Block, Block).ContainsAnyExcept(owner));

    [Test]
    public async Task A_delete_writes_none_of_the_instances_dirty_data_and_a_global_flush_meanwhile_does_not_either()
    {
        var memory = new MemoryDevice(64L * MiB);
        var log = new ContentLogDevice(memory);
        await using var store = await NewStoreAsync(memory, log);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var exports = await OpenAsync(cache, 4 * MiB, FlushMode.Global, "doomed", "neighbour");
        var (doomed, neighbour) = (exports[0], exports[1]);
        await doomed.WriteAsync(0, Filled(8 * Block, Doomed), WriteFlags.None);
        await neighbour.WriteAsync(0, Filled(Block, Neighbour), WriteFlags.None);
        log.Clear();

        await doomed.DeleteAsync(async () =>
        {
            await neighbour.FlushAsync();   // global: every attached instance's dirty data
            await store.DeleteInstanceAsync("doomed");
        });

        Assert.That(log.Writes.Any(w => HoldsBlockOf(w.Data, Doomed)), Is.False, "not one block of the deleted instance was written");
        Assert.That(log.Writes.Any(w => HoldsBlockOf(w.Data, Neighbour)), Is.True, "the neighbour's flush went on");
        Assert.That(cache.Instances.Select(i => i.Name), Is.EqualTo(new[] { "neighbour" }));
        Assert.That(cache.DirtyBytes, Is.Zero);
        await neighbour.DisposeAsync();
    }

    [Test]
    public async Task A_delete_that_fails_leaves_the_export_and_its_dirty_data_as_they_were()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("kept", 4 * MiB, null);
        await using var export = new InstanceExport(cache, instance, null);
        await export.WriteAsync(0, Filled(8 * Block, 1), WriteFlags.None);

        Assert.ThrowsAsync<IOException>(async () => await export.DeleteAsync(() => throw new IOException("the journal write failed")));

        Assert.That(cache.Instances.Single().DirtyBytes, Is.EqualTo(8 * Block), "attached again, dirty data and all");
        byte[] read = new byte[8 * Block];
        await export.ReadAsync(0, read);
        Assert.That(read.All(b => b == 1), Is.True);
        await export.FlushAsync();
        Assert.That(instance.UpperBlocks, Is.EqualTo(8), "and written back by a flush as before");
    }
}
