using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Engine.Tests.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// A device that can stop the next write at or past a byte until released: a write-back can
/// be held on its way to the store while a test changes the cache around it.
/// </summary>
internal sealed class HeldWriteDevice(IBlockDevice inner) : IBlockDevice
{
    private Hold? _armed;

    public long Size => inner.Size;

    public Hold HoldNextWrite(long from) => _armed = new Hold(from);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        await WaitIfHeldAsync(offset);
        await inner.WriteAsync(offset, data, durable);
    }

    /// <summary>Held before the segments are read, as a device reads them only when it gets to the write.</summary>
    public async ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        await WaitIfHeldAsync(offset);
        await inner.WriteGatherAsync(offset, segments, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private async ValueTask WaitIfHeldAsync(long offset)
    {
        var hold = _armed;
        if (hold is not null && offset >= hold.From && Interlocked.CompareExchange(ref _armed, null, hold) == hold)
        {
            hold.Reached.SetResult();
            await hold.Released.Task;
        }
    }

    internal sealed class Hold(long from)
    {
        public long From => from;

        public TaskCompletionSource Reached { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>
/// Per-instance quotas: past its quota an instance's writes that need new space get ENOSPC,
/// rewrites of its own blocks do not, and its neighbours are unaffected.
/// </summary>
[TestFixture]
public sealed class QuotaTests
{
    private const long Quota = 16 * Block;

    [Test]
    public async Task Writes_past_the_quota_fail_with_no_space_and_rewrites_and_neighbours_go_on()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var limited = new InstanceExport(cache, await store.CreateInstanceAsync("limited", 4 * MiB, null, quota: Quota), null);
        await using var free = new InstanceExport(cache, await store.CreateInstanceAsync("free", 4 * MiB, null), null);

        // 12 blocks dirty, 4 of them written back: 16 in all, the quota.
        await limited.WriteAsync(0, Filled(4 * Block, 1), WriteFlags.Fua);
        await limited.WriteAsync(100 * Block, Filled(12 * Block, 2), WriteFlags.None);

        var refused = Assert.ThrowsAsync<ExportException>(async () => await limited.WriteAsync(200 * Block, Filled(Block, 3), WriteFlags.None));
        Assert.That(refused!.Error, Is.EqualTo(ExportError.NoSpace));
        Assert.That(refused.Message, Does.Contain("quota"));
        var partial = Assert.ThrowsAsync<ExportException>(async () => await limited.WriteAsync((300 * Block) + 5, Filled(10, 3), WriteFlags.None));
        Assert.That(partial!.Error, Is.EqualTo(ExportError.NoSpace), "a partial write that needs a new block");

        // Rewriting its own blocks (dirty or written back) needs no new space.
        await limited.WriteAsync(0, Filled(Block, 4), WriteFlags.None);
        await limited.WriteAsync(105 * Block, Filled(2 * Block, 5), WriteFlags.None);
        // A neighbour without a quota writes on.
        await free.WriteAsync(0, Filled(64 * Block, 6), WriteFlags.None);

        // Nothing refused was written: the refused ranges still read as zeros.
        byte[] read = new byte[Block];
        await limited.ReadAsync(200 * Block, read);
        Assert.That(read.All(b => b == 0), Is.True);

        // Still enforced once everything is in the store, and room comes back with a trim.
        await limited.FlushAsync();
        Assert.ThrowsAsync<ExportException>(async () => await limited.WriteAsync(200 * Block, Filled(Block, 3), WriteFlags.None));
        await limited.TrimAsync(100 * Block, 2 * Block, WriteFlags.None);
        await limited.WriteAsync(200 * Block, Filled(2 * Block, 7), WriteFlags.None);
        Assert.ThrowsAsync<ExportException>(async () => await limited.WriteAsync(300 * Block, Filled(Block, 8), WriteFlags.None));
    }

    [Test]
    public async Task Dirty_data_written_before_a_quota_was_set_counts_against_it()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("late", 4 * MiB, null);
        await using var export = new InstanceExport(cache, instance, null);

        await export.WriteAsync(0, Filled(4 * Block, 1), WriteFlags.Fua);               // 4 upper blocks
        await export.WriteAsync(100 * Block, Filled(10 * Block, 2), WriteFlags.None);   // 10 dirty blocks of new space
        await export.WriteAsync(0, Filled(Block, 3), WriteFlags.None);                  // dirty over an upper block: no new space
        await store.SetQuotaAsync("late", Quota);

        await export.WriteAsync(200 * Block, Filled(2 * Block, 4), WriteFlags.None);    // 4 + 10 + 2 = 16, the quota
        Assert.That(instance.FootprintBlocks, Is.EqualTo(16));
        var refused = Assert.ThrowsAsync<ExportException>(async () => await export.WriteAsync(300 * Block, Filled(Block, 5), WriteFlags.None));
        Assert.That(refused!.Error, Is.EqualTo(ExportError.NoSpace));

        // Trimming dirty blocks gives their room back; once all is in the store the count is the same.
        await export.TrimAsync(100 * Block, 4 * Block, WriteFlags.None);
        await export.WriteAsync(300 * Block, Filled(4 * Block, 6), WriteFlags.None);
        await export.FlushAsync();
        Assert.That((instance.UpperBlocks, instance.FootprintBlocks), Is.EqualTo((16L, 16L)));
        Assert.ThrowsAsync<ExportException>(async () => await export.WriteAsync(400 * Block, Filled(Block, 7), WriteFlags.None));
    }

    [Test]
    public async Task A_block_written_again_during_its_write_back_is_counted_once()
    {
        var memory = new MemoryDevice(64L * MiB);
        var device = new HeldWriteDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("q", 4 * MiB, null, quota: Quota);
        await using var export = new InstanceExport(cache, instance, null);
        await export.WriteAsync(0, Filled(Block, 1), WriteFlags.None);

        var hold = device.HoldNextWrite(DataStart(store));
        var flush = export.FlushAsync().AsTask();
        await hold.Reached.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await export.WriteAsync(0, Filled(Block, 2), WriteFlags.None).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        hold.Released.SetResult();
        await flush.WaitAsync(TimeSpan.FromSeconds(10));

        // Block 0 is an upper block now and dirty again: one block of the quota, not two.
        Assert.That((instance.UpperBlocks, instance.FootprintBlocks), Is.EqualTo((1L, 1L)));
        await export.WriteAsync(100 * Block, Filled(15 * Block, 3), WriteFlags.None);
        Assert.ThrowsAsync<ExportException>(async () => await export.WriteAsync(200 * Block, Filled(Block, 4), WriteFlags.None));
        await export.FlushAsync();
        Assert.That(instance.FootprintBlocks, Is.EqualTo(16));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task Racing_writers_trims_and_write_back_keep_the_count_exact(int seed)
    {
        // Write-back of anything dirty every millisecond, in small batches, under the writers.
        var busy = new CacheOptions
        {
            BackgroundRatio = 0.01,
            MaxDirtyAge = TimeSpan.FromMilliseconds(1),
            BackgroundInterval = TimeSpan.FromMilliseconds(1),
            BackgroundBatchBlocks = 4,
        };
        const long blocks = 256, quota = 64;
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, busy);
        var instance = await store.CreateInstanceAsync("q", blocks * Block, null, quota: quota * Block);
        await using var export = new InstanceExport(cache, instance, null);

        long refused = 0;
        async Task WorkAsync(int worker)
        {
            var rng = new Random((seed * 10) + worker);
            for (int step = 0; step < 400; step++)
            {
                long first = rng.NextInt64(blocks - 4);
                int count = rng.Next(1, 5);
                try
                {
                    switch (rng.Next(10))
                    {
                        case < 6:
                            await export.WriteAsync((first * Block) + rng.Next(2), Filled((count * Block) - 1, (byte)worker), WriteFlags.None);
                            break;
                        case < 8:
                            await export.TrimAsync(first * Block, count * Block, WriteFlags.None);
                            break;
                        case 8:
                            await export.ZeroAsync((first * Block) + rng.Next(2), (count * Block) - 1, ZeroFlags.NoHole);
                            break;
                        default:
                            await export.FlushAsync();
                            break;
                    }
                }
                catch (ExportException e) when (e.Error == ExportError.NoSpace)
                {
                    Interlocked.Increment(ref refused);
                }

                // One read: the footprint and the upper blocks read one after the other need not agree.
                Assert.That(instance.FootprintBlocks, Is.LessThanOrEqualTo(quota), "nothing past the quota");
            }
        }

        await Task.WhenAll(Enumerable.Range(1, 3).Select(w => Task.Run(() => WorkAsync(w))));
        Assert.That(refused, Is.Positive, "the workload reached the quota");

        await export.FlushAsync();
        Assert.That(instance.FootprintBlocks, Is.EqualTo(instance.UpperBlocks), "nothing dirty, nothing reserved");
        // No reservation leaked: with everything trimmed, exactly the quota fits again.
        await export.TrimAsync(0, blocks * Block, WriteFlags.None);
        await export.FlushAsync();
        Assert.That(instance.FootprintBlocks, Is.Zero);
        await export.WriteAsync(0, Filled((int)quota * Block, 9), WriteFlags.None);
        Assert.ThrowsAsync<ExportException>(async () => await export.WriteAsync(quota * Block, Filled(Block, 9), WriteFlags.None));
    }

    [Test]
    public async Task An_unaligned_trim_at_the_quota_gives_room_back()
    {
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("q", 4 * MiB, null, quota: Quota);
        await using var export = new InstanceExport(cache, instance, null);
        await export.WriteAsync(0, Filled(8 * Block, 1), WriteFlags.Fua);
        await export.WriteAsync(8 * Block, Filled(8 * Block, 2), WriteFlags.None);   // at the quota: 8 upper, 8 dirty

        // From inside block 0 to inside block 16 (never written: zeros, so its edge needs nothing).
        await export.TrimAsync(512, (16 * Block) + 100, WriteFlags.None);

        Assert.That(instance.FootprintBlocks, Is.EqualTo(1), "blocks 1-15 dropped; block 0 keeps its head");
        byte[] head = new byte[Block];
        await export.ReadAsync(0, head);
        Assert.That(head.Take(512).All(b => b == 1) && head.Skip(512).All(b => b == 0), Is.True);
        await export.WriteAsync(100 * Block, Filled(15 * Block, 3), WriteFlags.None);     // the room came back
    }

    [Test]
    public async Task At_the_quota_a_trim_leaves_a_base_block_edge_as_it_was_and_a_zero_refuses()
    {
        using var testBase = await TestBase.CreateAsync(7, 64 * Block);
        var memory = new MemoryDevice(64L * MiB);
        await using var store = await NewStoreAsync(memory);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var instance = await store.CreateInstanceAsync("q", 64 * Block, testBase.Identity, quota: 4 * Block);
        await using var export = await InstanceExport.OpenAsync(cache, instance);
        await export.WriteAsync(40 * Block, Filled(4 * Block, 1), WriteFlags.None);    // at the quota

        // Part of base block 10: zeroing it would need a new block.
        await export.TrimAsync((10 * Block) + 100, 200, WriteFlags.None);
        byte[] read = new byte[Block];
        await export.ReadAsync(10 * Block, read);
        Assert.That(read, Is.EqualTo(testBase.Bytes.AsSpan(10 * Block, Block).ToArray()), "a trim is a hint: the block keeps its data");

        var refused = Assert.ThrowsAsync<ExportException>(async () => await export.ZeroAsync((10 * Block) + 100, 200, ZeroFlags.None));
        Assert.That(refused!.Error, Is.EqualTo(ExportError.NoSpace), "a zero must read as zeros, so it refuses");
        Assert.That(instance.FootprintBlocks, Is.EqualTo(4));
    }

    [Test]
    public async Task A_quota_is_kept_across_a_reopen_and_can_be_changed_or_removed()
    {
        var memory = new MemoryDevice(64L * MiB);
        var store = await NewStoreAsync(memory);
        await store.CreateInstanceAsync("q", 4 * MiB, null, quota: Quota);
        await store.SetQuotaAsync("q", 2 * Quota);
        var afterKill = await UpperStore.OpenAsync(memory.Clone());
        Assert.That(afterKill.Find("q")!.Definition.Quota, Is.EqualTo(2 * Quota), "from the journal");
        await afterKill.DisposeAsync();
        await store.DisposeAsync();

        await using var reopened = await UpperStore.OpenAsync(memory);
        Assert.That(reopened.Find("q")!.Definition.Quota, Is.EqualTo(2 * Quota), "from the checkpoint");
        await reopened.SetQuotaAsync("q", 0);
        Assert.That(reopened.Find("q")!.Definition.Quota, Is.Zero);
        Assert.ThrowsAsync<InstanceException>(async () => await reopened.SetQuotaAsync("q", 1000), "not whole blocks");
    }
}
