using System.Diagnostics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// DESIGN.md, invariant 7: a writer past its dirty limit waits for its own write-back, and only it; memory
/// stays within the limit; writes are never failed for lack of cache.
/// </summary>
[TestFixture]
public sealed class ThrottlingTests
{
    [Test]
    [Category("Slow")] // left out of make check
    public async Task A_writer_far_past_its_limit_is_throttled_while_a_neighbours_small_writes_keep_completing()
    {
        var memory = new MemoryDevice(128L * MiB);
        await UpperStore.CreateAsync(memory);
        // Write-back is slow (each 64 KiB batch takes 5 ms or more): 16 MiB cannot get through quickly.
        await using var store = await UpperStore.OpenAsync(new SlowWriteDevice(memory, TimeSpan.FromMilliseconds(5)));
        var options = new CacheOptions
        {
            InstanceDirtyLimit = MiB,
            GlobalDirtyLimit = 64L * MiB,
            BackgroundRatio = 1,
            MaxDirtyAge = Timeout.InfiniteTimeSpan,
            BackgroundBatchBlocks = 16,
        };
        await using var cache = new WriteBackCache(store, options);
        var exports = await OpenAsync(cache, 32L * MiB, FlushMode.Isolated, "noisy", "quiet");
        var (noisy, quiet) = (exports[0], exports[1]);

        long peak = 0;
        var noisyWriter = Task.Run(async () =>
        {
            byte[] chunk = Filled(MiB, 0x4E);
            for (long offset = 0; offset < 16L * MiB; offset += MiB)
            {
                await noisy.WriteAsync(offset, chunk, WriteFlags.None);
                peak = Math.Max(peak, noisy.DirtyBytes);
            }
        });
        while (noisy.Counters.Throttled == TimeSpan.Zero && !noisyWriter.IsCompleted)
        {
            await Task.Delay(1);
        }

        // The noisy writer is throttled now. The quiet one's writes go straight into the cache.
        var quietWrites = Stopwatch.StartNew();
        for (int i = 0; i < 64; i++)
        {
            await quiet.WriteAsync(i * (long)Block, Filled(Block, 0x51), WriteFlags.None);
        }

        quietWrites.Stop();
        bool noisyStillGoing = !noisyWriter.IsCompleted;
        await noisyWriter;

        Assert.Multiple(() =>
        {
            Assert.That(noisyStillGoing, Is.True, $"the quiet instance's 64 writes ({quietWrites.ElapsedMilliseconds} ms) finished while the noisy one was still held back");
            Assert.That(quiet.Counters.Throttled, Is.EqualTo(TimeSpan.Zero), "the quiet instance was never throttled");
            Assert.That(noisy.Counters.Throttled, Is.GreaterThan(TimeSpan.FromMilliseconds(50)), "the noisy instance waited for its write-back");
            Assert.That(peak, Is.LessThanOrEqualTo(2L * MiB), "the noisy instance's dirty data stayed near its limit (limit + one write)");
            Assert.That(noisy.Counters.WriteBackBytes, Is.GreaterThanOrEqualTo(14L * MiB), "what made room was its own write-back");
            Assert.That(quiet.Counters.WriteBackBytes, Is.Zero, "the quiet instance's data was not written back for the noisy one");
        });

        // Nothing was lost on the way.
        byte[] back = new byte[16 * MiB];
        await noisy.ReadAsync(0, back);
        Assert.That(back.AsSpan().IndexOfAnyExcept((byte)0x4E), Is.EqualTo(-1));
        await noisy.DisposeAsync();
        await quiet.DisposeAsync();
    }

    [Test]
    public async Task Past_the_global_limit_only_instances_holding_at_least_their_share_are_throttled()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        var options = CacheOptions.FlushOnly with { InstanceDirtyLimit = 4L * MiB, GlobalDirtyLimit = 4L * MiB };
        await using var cache = new WriteBackCache(store, options);
        var exports = await OpenAsync(cache, 8L * MiB, FlushMode.Isolated, "big", "small");
        await FillAsync(exports[0], 3L * MiB, 1);
        await FillAsync(exports[1], MiB, 2);

        // 4 MiB in all: the global limit. "big" holds more than half, "small" less.
        Assert.That(cache.DirtyBytes, Is.EqualTo(4L * MiB), "precondition");
        await exports[1].WriteAsync(7L * MiB, Filled(Block, 3), WriteFlags.None);
        await exports[0].WriteAsync(7L * MiB, Filled(Block, 3), WriteFlags.None);

        Assert.Multiple(() =>
        {
            Assert.That(exports[1].Counters.Throttled, Is.EqualTo(TimeSpan.Zero), "an instance below its share writes at once");
            Assert.That(exports[0].Counters.Throttled, Is.GreaterThan(TimeSpan.Zero), "the biggest holder waited for its write-back");
            Assert.That(exports[0].Counters.WriteBackBytes, Is.GreaterThan(0), "its own data made the room");
            Assert.That(exports[1].Counters.WriteBackBytes, Is.Zero, "the small instance's data stayed in the cache");
        });
        await exports[0].DisposeAsync();
        await exports[1].DisposeAsync();
    }
}
