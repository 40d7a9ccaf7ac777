using System.Runtime.InteropServices;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// Write-back writes dirty blocks from their own memory (no staging copy), so that memory must
/// not change, or be reused, until the device is done with it.
/// </summary>
[TestFixture]
public sealed class ZeroCopyWriteBackTests
{
    [Test]
    public async Task A_write_to_a_block_on_its_way_to_the_store_does_not_change_the_bytes_being_written()
    {
        var memory = new MemoryDevice(64L * MiB);
        var device = new HeldWriteDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("vm", 4 * MiB, null);
        await using var export = new InstanceExport(cache, instance, null);
        await export.WriteAsync(0, Filled(2 * Block, 0xA1), WriteFlags.None);

        // The device takes the write-back's bytes only when released, as a real device reads
        // them only when it gets to the write; the block is written again before that.
        var hold = device.HoldNextWrite(DataStart(store));
        var flush = export.FlushAsync().AsTask();
        await hold.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await export.WriteAsync(Block, Filled(Block, 0xB2), WriteFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        hold.Released.SetResult();
        await flush.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await StoredAsync(store, instance, 2 * Block), Is.EqualTo(Filled(2 * Block, 0xA1)),
            "the flush wrote what was acknowledged before it, not the write that overlapped it");
        Assert.That(await ReadAsync(export, 2 * Block), Is.EqualTo([.. Filled(Block, 0xA1), .. Filled(Block, 0xB2)]), "clients see the newest write");

        await export.FlushAsync();
        Assert.That(await StoredAsync(store, instance, 2 * Block), Is.EqualTo([.. Filled(Block, 0xA1), .. Filled(Block, 0xB2)]));
        Assert.That(cache.Blocks.MemoryCount, Is.EqualTo(BlockSlab.Count), "the overwritten bytes' memory came back once they were written, and the rest once clean");
    }

    [Test]
    public async Task Memory_of_a_block_abandoned_on_its_way_to_the_store_is_reused_only_after_the_device_is_done()
    {
        var memory = new MemoryDevice(64L * MiB);
        var device = new HeldWriteDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var exports = await OpenAsync(cache, 4 * MiB, FlushMode.Isolated, "a", "b");
        await exports[0].WriteAsync(0, Filled(Block, 0xA1), WriteFlags.None);

        var hold = device.HoldNextWrite(DataStart(store));
        var flush = exports[0].FlushAsync().AsTask();
        await hold.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cache.AbandonAsync(); // forgets every dirty block, the one on its way too
        await exports[1].WriteAsync(0, Filled(4 * Block, 0xC3), WriteFlags.None); // takes spare memory
        hold.Released.SetResult();
        await flush.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(await StoredAsync(store, store.Find("a")!, Block), Is.EqualTo(Filled(Block, 0xA1)),
            "the memory being written was not handed to the neighbour's write");
        Assert.That(cache.Blocks.MemoryCount, Is.EqualTo(BlockSlab.Count - 4), "the abandoned block's memory came back when its write did");
    }

    [Test]
    public async Task Blocks_reused_after_a_flush_write_only_their_own_bytes()
    {
        await using var memory = new MemoryDevice(64L << 20);
        await using (var store = await NewStoreAsync(memory))
        await using (var cache = new WriteBackCache(store, CacheOptions.FlushOnly))
        {
            var export = (await OpenAsync(cache, 8 * MiB, FlushMode.Isolated, "vm"))[0];
            await FillAsync(export, 3 * MiB, 0xA1);
            await export.FlushAsync(); // 768 blocks back to the pool, full of 0xA1
            await export.WriteAsync(4 * MiB, Filled(2 * Block, 0xB2), WriteFlags.None);
            await export.FlushAsync(); // two of them again
            await export.DisposeAsync();
        }

        await using var reopened = await UpperStore.OpenAsync(memory.Clone());
        await using var readCache = new WriteBackCache(reopened, CacheOptions.FlushOnly);
        await using var read = new InstanceExport(readCache, reopened.Find("vm")!, null);
        byte[] data = await ReadAsync(read, 8 * MiB);
        Assert.That(data.AsSpan(0, 3 * MiB).IndexOfAnyExcept((byte)0xA1), Is.EqualTo(-1));
        Assert.That(data.AsSpan(3 * MiB, MiB).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(data.AsSpan(4 * MiB, 2 * Block).IndexOfAnyExcept((byte)0xB2), Is.EqualTo(-1));
        Assert.That(data.AsSpan((4 * MiB) + (2 * Block)).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "nothing of the reused blocks' old bytes");
    }

    [Test]
    public async Task A_streaming_writer_s_blocks_reach_the_device_as_few_long_runs_of_memory_also_when_reused()
    {
        var memory = new MemoryDevice(64L * MiB);
        var device = new GatherShapeDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var export = (await OpenAsync(cache, 8 * MiB, FlushMode.Isolated, "vm"))[0];
        for (int pass = 0; pass < 3; pass++)
        {
            await FillAsync(export, 2 * MiB, (byte)(pass + 1)); // the second and third pass reuse the first's memory
            device.Clear();
            await export.FlushAsync();

            // 512 blocks in two 1 MiB batches, each from at most two slabs: at most four runs,
            // where one per block (512) would mean every iovec is 4 KiB.
            Assert.That(device.Blocks, Is.EqualTo(512), $"pass {pass}");
            Assert.That(device.Runs, Is.LessThanOrEqualTo(4), $"pass {pass}: runs of adjacent memory");
        }

        await export.DisposeAsync();
    }

    /// <summary>The first bytes of an instance as the store holds them (the cache not asked).</summary>
    private static async Task<byte[]> StoredAsync(UpperStore store, StoreInstance instance, int bytes)
    {
        using var buffer = new AlignedBuffer(bytes);
        await store.ReadAsync(instance, 0, buffer.Memory, []);
        return buffer.Span.ToArray();
    }

    private static async Task<byte[]> ReadAsync(InstanceExport export, int bytes)
    {
        byte[] data = new byte[bytes];
        await export.ReadAsync(0, data);
        return data;
    }
}

/// <summary>Counts the blocks of gather writes and the runs of adjacent memory they came in.</summary>
internal sealed class GatherShapeDevice(IBlockDevice inner) : IBlockDevice
{
    private int _blocks;
    private int _runs;

    public long Size => inner.Size;

    public int Blocks => Volatile.Read(ref _blocks);

    public int Runs => Volatile.Read(ref _runs);

    public void Clear() => (_blocks, _runs) = (0, 0);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) => inner.WriteAsync(offset, data, durable);

    public ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        (BlockSlab? Slab, int End) last = (null, 0);
        foreach (var segment in segments.Span)
        {
            // The cache's blocks are slices of slabs: adjacent in memory is the same slab, next index.
            if (!MemoryMarshal.TryGetMemoryManager(segment, out BlockSlab? slab, out int start, out int length))
            {
                throw new AssertionException("a gather segment that is not a cache block");
            }

            if (slab != last.Slab || start != last.End)
            {
                Interlocked.Increment(ref _runs);
            }

            last = (slab, start + length);
            Interlocked.Add(ref _blocks, length / UpperStore.BlockSize);
        }

        return inner.WriteGatherAsync(offset, segments, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}
