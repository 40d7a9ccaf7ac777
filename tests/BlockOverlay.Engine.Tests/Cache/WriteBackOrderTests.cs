using System.Diagnostics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Maps;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// The cache's order of age: background write-back takes the blocks dirty the longest first,
/// and a block written again during its write-back is as old as that second write.
/// </summary>
[TestFixture]
public sealed class WriteBackOrderTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Test]
    public async Task Background_write_back_takes_the_oldest_dirty_blocks_first()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("age", 4 * MiB, null);
        var blocks = cache.Attach(instance);
        foreach (long b in new long[] { 10, 5, 20, 1 })
        {
            Assert.That(blocks.TryWrite(b, Filled(Block, (byte)b)), Is.True);
        }

        await blocks.WriteBackSomeAsync(2).WaitAsync(Patience);

        Assert.That(Upper(store, instance), Is.EqualTo(new long[] { 5, 10 }), "the two written first, not the two lowest");
    }

    [Test]
    public async Task A_block_written_again_during_its_write_back_is_as_old_as_that_write()
    {
        var memory = new MemoryDevice(64L * MiB);
        var device = new HeldWriteDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("age", 4 * MiB, null);
        var blocks = cache.Attach(instance);
        blocks.TryWrite(7, Filled(Block, 1));
        blocks.TryWrite(8, Filled(Block, 2));

        var hold = device.HoldNextWrite(DataStart(store));
        var first = blocks.WriteBackSomeAsync(1);                  // block 7, the oldest
        await hold.Reached.Task.WaitAsync(Patience);
        blocks.TryWrite(7, Filled(Block, 3));                      // again, while on its way
        blocks.TryWrite(9, Filled(Block, 4));
        hold.Released.SetResult();
        await first.WaitAsync(Patience);

        // Now 8 is the oldest (its write came before 7's second one), then 7, then 9.
        await blocks.WriteBackSomeAsync(1).WaitAsync(Patience);
        Assert.That(Upper(store, instance), Is.EqualTo(new long[] { 7, 8 }));
        Assert.That(blocks.DirtyBytes, Is.EqualTo(2 * Block), "7 (written again) and 9 stay dirty");
        await blocks.WriteBackSomeAsync(1).WaitAsync(Patience);
        Assert.That(blocks.DirtyBytes, Is.EqualTo(Block));
        byte[] seven = new byte[Block];
        await store.ReadAsync(instance, 7, seven, []);
        Assert.That(seven, Is.EqualTo(Filled(Block, 3)), "the second write of 7 went before 9");
    }

    [Test]
    public async Task Among_idle_instances_one_made_dirty_again_after_its_write_back_is_written_back_again()
    {
        // The background writer looks only at instances that have dirty data (WriteBackCache,
        // "Thousands of idle instances"): one it found clean and dropped must come back with its next write.
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, new CacheOptions { MaxDirtyAge = TimeSpan.FromMilliseconds(20), BackgroundInterval = TimeSpan.FromMilliseconds(10) });
        for (int i = 0; i < 100; i++)
        {
            cache.Attach(await store.CreateInstanceAsync($"idle{i}", MiB, null));
        }

        var instance = await store.CreateInstanceAsync("busy", 4 * MiB, null);
        var blocks = cache.Attach(instance);
        for (int round = 1; round <= 3; round++)
        {
            Assert.That(blocks.TryWrite(round, Filled(Block, (byte)round)), Is.True);
            var clock = Stopwatch.StartNew();
            while (blocks.DirtyBytes != 0)
            {
                Assert.That(clock.Elapsed, Is.LessThan(Patience), $"round {round}: never written back by age");
                await Task.Delay(10);
            }

            Assert.That(Upper(store, instance), Is.EqualTo(Enumerable.Range(1, round).Select(b => (long)b)), $"round {round}");
        }
    }

    /// <summary>Virtual blocks of the instance that the store maps to upper blocks, ascending.</summary>
    private static long[] Upper(UpperStore store, StoreInstance instance)
    {
        var layout = new List<MappedExtent>();
        store.Lookup(instance, 0, instance.Blocks, layout);
        return [.. layout.Where(e => e.Kind == ExtentKind.Upper).SelectMany(e => Enumerable.Range(0, (int)e.Length).Select(i => e.VirtualBlock + i))];
    }
}
