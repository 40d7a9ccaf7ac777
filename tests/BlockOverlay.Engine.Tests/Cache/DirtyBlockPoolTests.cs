using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// Dirty blocks are reused, not allocated per write: the GC pauses that per-block arrays
/// caused were felt by every tenant of the server (perf/noisy-neighbour).
/// </summary>
[TestFixture]
public sealed class DirtyBlockPoolTests
{
    [Test]
    public void A_given_block_is_taken_again_reset_and_the_pool_keeps_no_more_than_its_capacity()
    {
        var pool = new DirtyBlockPool(capacity: 2);
        var first = pool.Take(number: 5, dirtySince: 7);
        first.Version = 3;
        first.InFlight = first.Data;
        first.RedirtiedSince = 9;
        first.Older = new DirtyBlock();
        pool.Give(first);

        var again = pool.Take(number: 6, dirtySince: 11);
        Assert.That(again, Is.SameAs(first));
        Assert.That((again.Number, again.Version, again.DirtySince, again.RedirtiedSince, again.WritingBack), Is.EqualTo((6L, 0L, 11L, 0L, false)));
        Assert.That(again.Older, Is.Null, "a reused block is linked to no other");
        Assert.That(again.Data.Length, Is.EqualTo(Block), "it has memory again");

        pool.Give(again);
        pool.Give(new DirtyBlock());
        pool.Give(new DirtyBlock());
        Assert.That(pool.Count, Is.EqualTo(2), "past its capacity, blocks are left to the GC");
    }

    [Test]
    [Category("Slow")] // left out of make check
    public void An_idle_pool_gives_half_its_spares_back_each_time_it_is_trimmed()
    {
        var pool = new DirtyBlockPool(capacity: 100);
        for (int i = 0; i < 8; i++)
        {
            pool.Give(new DirtyBlock());
        }

        pool.TrimIfIdle();
        Assert.That(pool.Count, Is.EqualTo(8), "blocks were taken less than a second ago (at creation)");
        Thread.Sleep(1100);
        pool.TrimIfIdle();
        Assert.That(pool.Count, Is.EqualTo(4));
        pool.Take(0, 1);
        Thread.Sleep(1100);
        pool.TrimIfIdle();
        Assert.That(pool.Count, Is.EqualTo(1), "3 spares left after the take, then half of them (rounded up) go");
    }

    [Test]
    public async Task Writes_into_blocks_freed_by_a_write_back_allocate_no_block_memory()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var export = new InstanceExport(cache, await store.CreateInstanceAsync("x", 16 * MiB, null), null);
        byte[] data = Filled(MiB, 1);
        for (long offset = 0; offset < 4 * MiB; offset += MiB)
        {
            await export.WriteAsync(offset, data, WriteFlags.None);
        }

        await export.FlushAsync();   // 1,024 blocks back to the pool
        long before = GC.GetTotalAllocatedBytes(precise: true);
        for (long offset = 8 * MiB; offset < 12 * MiB; offset += MiB)
        {
            await export.WriteAsync(offset, data, WriteFlags.None);
        }

        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.That(allocated, Is.LessThan(512 << 10), "4 MiB of new dirty blocks came from the pool, not the heap");
        Assert.That(cache.Blocks.Count, Is.Zero);
    }

    [Test]
    public async Task A_large_flush_lists_its_blocks_and_batches_them_in_reused_memory()
    {
        // 64 MiB of dirty data is 16,384 blocks: the flush's sorted list of them alone was
        // 128 KiB on the large-object heap (a gen2 collection's worth), and each of its 64
        // batches grew two fresh lists. Beside a noisy neighbour that was most of what the
        // server allocated (perf/RESULTS.md, "Notes on noisy-neighbour": the GC's pauses).
        var memory = new MemoryDevice(192L * MiB);
        byte[] ones = Filled(MiB, 0xff);
        for (long offset = 0; offset < memory.Size; offset += MiB)
        {
            memory.WriteUnaligned(offset, ones); // every block held up front: the memory device allocates a block when first written
        }

        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var export = new InstanceExport(cache, await store.CreateInstanceAsync("x", 128 * MiB, null), null);
        byte[] data = Filled(MiB, 1);
        async Task WriteAsync()
        {
            for (long offset = 0; offset < 64 * MiB; offset += MiB)
            {
                await export.WriteAsync(offset, data, WriteFlags.None);
            }
        }

        await WriteAsync();
        await export.FlushAsync(); // warms the pools, the store's maps and the code
        await WriteAsync();
        long before = GC.GetTotalAllocatedBytes(precise: true);
        await export.FlushAsync();
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;

        TestContext.Out.WriteLine($"a flush of 16,384 blocks allocated {allocated:N0} bytes");
        Assert.That(allocated, Is.LessThan(256 << 10));
    }
}
