using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// A memory device that yields before every read and write, so that the read and the write
/// of a read-modify-write are separated by real asynchrony and concurrent requests interleave
/// between them (a <see cref="MemoryDevice"/> alone completes synchronously).
/// </summary>
internal sealed class YieldingDevice(MemoryDevice inner) : IBlockDevice
{
    public long Size => inner.Size;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        await Task.Yield();
        await inner.ReadAsync(offset, buffer);
        await Task.Yield();
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        await Task.Yield();
        await inner.WriteAsync(offset, data, durable);
        await Task.Yield();
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>
/// <c>BlockRangeLock</c> (internal) tested through what it is for: a write, zero or trim that
/// starts or ends inside a block is a read-modify-write of the whole block, and concurrent ones
/// to disjoint bytes of the same blocks must never lose each other's bytes.
/// </summary>
[TestFixture]
public sealed class BlockRangeLockTests
{
    private const int Block = UpperStore.BlockSize;
    private const int SlotBytes = 100;   // does not divide 4096: some slots straddle two blocks
    private const long RegionStart = (3 * Block) + 2000;
    private const int RegionBlocks = 4;
    private const int Slots = RegionBlocks * Block / SlotBytes;

    [TestCase(1, 12, 150)]
    [TestCase(2, 24, 80)]
    [TestCase(3, 6, 300)]
    public async Task Concurrent_partial_block_changes_to_disjoint_bytes_of_the_same_blocks_lose_nothing(int seed, int tasks, int iterations)
    {
        using var testBase = await TestBase.CreateAsync(seed, 64 << 10);
        var device = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(device, new StoreCreateOptions { JournalBlocks = 16 });
        var store = await UpperStore.OpenAsync(new YieldingDevice(device));
        var instance = await store.CreateInstanceAsync("shared", 256 << 10, testBase.Identity);
        // Small limits: partial writes meet throttling and background write-back of their blocks.
        var cache = new WriteBackCache(store, new CacheOptions { InstanceDirtyLimit = 1 << 20, GlobalDirtyLimit = 1 << 20, MaxDirtyAge = TimeSpan.FromMilliseconds(5) });
        var export = await InstanceExport.OpenAsync(cache, instance);

        // Slot s belongs to task s % tasks; expected[s] is the owner's last content of it.
        byte[][] expected = Enumerable.Range(0, Slots)
            .Select(s => testBase.Bytes.AsSpan((int)(RegionStart + (s * SlotBytes)), SlotBytes).ToArray()).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();

        async Task Worker(int task)
        {
            var rng = new Random((seed * 1000) + task);
            var mine = Enumerable.Range(0, Slots).Where(s => s % tasks == task).ToArray();
            for (int i = 0; i < iterations && failures.IsEmpty; i++)
            {
                int slot = mine[rng.Next(mine.Length)];
                long offset = RegionStart + (slot * SlotBytes);
                byte[] content = new byte[SlotBytes];
                string what;
                switch (rng.Next(100))
                {
                    case < 70:
                        rng.NextBytes(content);
                        var flags = rng.Next(10) == 0 ? WriteFlags.Fua : WriteFlags.None;
                        what = $"write{(flags == WriteFlags.Fua ? "-fua" : "")}";
                        await export.WriteAsync(offset, content, flags);
                        break;
                    case < 85:
                        what = "zero";
                        await export.ZeroAsync(offset, SlotBytes, ZeroFlags.None);
                        break;
                    case < 95:
                        what = "trim";
                        await export.TrimAsync(offset, SlotBytes, WriteFlags.None);
                        break;
                    default:
                        what = "flush";
                        await export.FlushAsync();
                        content = expected[slot];
                        break;
                }

                expected[slot] = content;
                byte[] back = new byte[SlotBytes];
                await export.ReadAsync(offset, back);
                if (!back.AsSpan().SequenceEqual(content))
                {
                    failures.Enqueue($"task {task} iteration {i}: slot {slot} (bytes {offset}..{offset + SlotBytes}, block {offset / Block}) " +
                        $"reads differently right after its own {what}: {back.AsSpan().CommonPrefixLength(content)} bytes as written, then not; " +
                        "another task's read-modify-write of the block overwrote it with stale bytes");
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, tasks).Select(t => Task.Run(() => Worker(t))));
        Assert.That(failures, Is.Empty);

        // Every slot holds its owner's last content; the bytes around the region are still the base's.
        byte[] region = new byte[(RegionBlocks + 2) * Block];
        long from = RegionStart - Block;
        await export.ReadAsync(from, region);
        var lost = Enumerable.Range(0, Slots)
            .Where(s => !region.AsSpan(Block + (s * SlotBytes), SlotBytes).SequenceEqual(expected[s])).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(lost, Is.Empty, "slots whose last change was lost");
            Assert.That(region.AsSpan(0, Block).SequenceEqual(testBase.Bytes.AsSpan((int)from, Block)), Is.True, "bytes before the region");
            int tail = Block + (Slots * SlotBytes);
            Assert.That(region.AsSpan(tail).SequenceEqual(testBase.Bytes.AsSpan((int)from + tail, region.Length - tail)), Is.True, "bytes after the region");
        });

        // And durably so: flushed, then a kill.
        await export.FlushAsync();
        var reopened = await UpperStore.OpenAsync(device.Clone());
        await export.DisposeAsync();
        await cache.DisposeAsync();
        await using (var reopenedCache = new WriteBackCache(reopened, CacheOptions.FlushOnly))
        {
            var again = await InstanceExport.OpenAsync(reopenedCache, reopened.Find("shared")!);
            byte[] afterKill = new byte[region.Length];
            await again.ReadAsync(from, afterKill);
            Assert.That(afterKill, Is.EqualTo(region), "the region after a flush and a kill");
            await again.DisposeAsync();
        }

        await reopened.DisposeAsync();
        await store.DisposeAsync();
    }
}
