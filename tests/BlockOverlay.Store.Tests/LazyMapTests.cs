using BlockOverlay.Io;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Tests.Crash;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// Lazy instance maps (docs/DESIGN.md, "Lazy instance maps"): opening a store reads the
/// checkpoint's root, groups and space pages but no map segment; an instance reads its segment
/// when first needed, once, and what it holds is the same as if it had been read at open.
/// </summary>
public sealed class LazyMapTests
{
    private const int Block = UpperStore.BlockSize;

    /// <summary>
    /// The reads an open makes grow with the groups (64 instances each), not with the instances:
    /// 1,000 instances each with a map cost a few group reads more than 100. Before lazy maps
    /// every segment was read at open: 900 reads more.
    /// </summary>
    [Test]
    public async Task Opening_a_store_reads_no_map_segment_whatever_the_store_holds()
    {
        var (small, _) = await ReadsAtOpenAsync(100);
        var (large, media) = await ReadsAtOpenAsync(1000);
        long moreGroups = (1000 / 64) - (100 / 64);
        Assert.That(large - small, Is.LessThanOrEqualTo(moreGroups + 1), $"device reads at open: {small} with 100 instances, {large} with 1,000");

        // The maps are all there, each read when first needed: one read per instance loaded.
        var counting = new ReadCountingDevice(media);
        await using var store = await UpperStore.OpenAsync(counting);
        Assert.That(store.Instances.Count(i => i.IsLoaded), Is.Zero, "instances loaded at open");
        foreach (int i in new[] { 0, 63, 64, 999 })
        {
            var x = store.Find($"i{i}")!;
            long before = counting.Reads;
            await store.LoadAsync(x);
            Assert.That(counting.Reads - before, Is.EqualTo(1), $"reads to load i{i}");
            Assert.That((await CrashTestKit.ReadValuesAsync(store, x, i % 16, 1, "loaded"))[0], Is.EqualTo(1000 + i), $"i{i}");
        }

        Assert.That(store.Instances.Count(i => i.IsLoaded), Is.EqualTo(4), "instances loaded");
    }

    private static async Task<(long Reads, MemoryDevice Media)> ReadsAtOpenAsync(int count)
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 16384, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            for (int i = 0; i < count; i++)
            {
                var x = await store.CreateInstanceAsync($"i{i}", 16 * Block, null);
                await store.WriteAsync(x, i % 16, CrashTestKit.Blocks(x.Definition.Id, i % 16, 1, 1000 + i));
                await store.CommitAsync(x);
            }
        }

        var counting = new ReadCountingDevice(media);
        await using (await UpperStore.OpenAsync(counting))
        {
            return (counting.Reads, media);
        }
    }

    /// <summary>
    /// An instance's size, extent count and footprint (what stat and quota show) are its group
    /// entry's until its map is loaded, and the same after.
    /// </summary>
    [Test]
    public async Task An_unloaded_instance_counts_its_blocks_and_extents_from_its_group_entry()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            var x = await store.CreateInstanceAsync("x", 64 * Block, null, quota: 32 * Block);
            await store.WriteAsync(x, 0, CrashTestKit.Blocks(x.Definition.Id, 0, 3, 1));
            await store.WriteAsync(x, 10, CrashTestKit.Blocks(x.Definition.Id, 10, 2, 10));
            store.Zero(x, 20, 4);
            await store.CommitAsync(x);
        }

        await using var again = await UpperStore.OpenAsync(media);
        var y = again.Find("x")!;
        Assert.That(y.IsLoaded, Is.False, "precondition: not loaded");
        var unloaded = (y.ExtentCount, y.UpperBlocks, y.FootprintBlocks, again.Info.Extents);
        Assert.That(unloaded, Is.EqualTo((3, 5L, 5L, 3L)), "counts before the map is loaded");
        await again.LoadAsync(y);
        Assert.That((y.ExtentCount, y.UpperBlocks, y.FootprintBlocks, again.Info.Extents), Is.EqualTo(unloaded), "counts once loaded");
    }

    /// <summary>
    /// Two first uses of one instance at once read its segment once and both see the map; the
    /// map is installed whole, never half.
    /// </summary>
    [Test]
    public async Task Two_first_loads_of_one_instance_at_once_read_its_segment_once()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            var x = await store.CreateInstanceAsync("x", 16 * Block, null);
            await store.WriteAsync(x, 4, CrashTestKit.Blocks(x.Definition.Id, 4, 2, 7));
            await store.CommitAsync(x);
        }

        var gate = new ReadCountingDevice(media);
        await using var again = await UpperStore.OpenAsync(gate);
        var y = again.Find("x")!;
        gate.HoldReads();
        var first = again.LoadAsync(y);
        var second = y.LoadAsync(gate);
        var third = again.LoadAsync(y);
        await gate.Held.Task;
        Assert.That((first.IsCompleted, second.IsCompleted, third.IsCompleted, y.IsLoaded), Is.EqualTo((false, false, false, false)),
            "everyone waits for the one read");
        long before = gate.Reads;
        gate.Release();
        await Task.WhenAll(first, second, third);
        Assert.That(gate.Reads - before, Is.EqualTo(1), "segment reads");
        Assert.That(await CrashTestKit.ReadValuesAsync(again, y, 3, 4, "loaded"), Is.EqualTo(new[] { BlockContent.Base, 7, 8, BlockContent.Base }));
    }

    /// <summary>A failed segment read leaves the instance unloaded and says so; the next use reads again.</summary>
    [Test]
    public async Task A_failed_load_leaves_the_instance_unloaded_and_the_next_use_tries_again()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            var x = await store.CreateInstanceAsync("x", 16 * Block, null);
            await store.WriteAsync(x, 1, CrashTestKit.Blocks(x.Definition.Id, 1, 1, 5));
            await store.CommitAsync(x);
        }

        var device = new ReadCountingDevice(media);
        await using var again = await UpperStore.OpenAsync(device);
        var y = again.Find("x")!;
        device.FailReads = true;
        Assert.ThrowsAsync<IOException>(() => again.LoadAsync(y));
        Assert.That(y.IsLoaded, Is.False, "after the failed read");
        Assert.Throws<InvalidOperationException>(() => again.Lookup(y, 0, 1, []), "a look-up of an unloaded map is a caller's bug, said so");
        device.FailReads = false;
        Assert.That((await CrashTestKit.ReadValuesAsync(again, y, 0, 2, "read again"))[1], Is.EqualTo(5));
    }

    /// <summary>
    /// A segment that reads back damaged, found when its instance is first used, fails that use as
    /// the device's error (IOException: EIO to the client), naming the instance, and not as a bug;
    /// the other instances load and read.
    /// </summary>
    [Test]
    public async Task A_damaged_segment_found_at_first_use_is_an_io_error_of_that_instance_alone()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            foreach (var (name, value) in new[] { ("hurt", 7), ("whole", 9) })
            {
                var x = await store.CreateInstanceAsync(name, 16 * Block, null);
                await store.WriteAsync(x, 1, CrashTestKit.Blocks(x.Definition.Id, 1, 1, value));
                await store.CommitAsync(x);
            }
        }

        await using var again = await UpperStore.OpenAsync(media);
        var hurt = again.Find("hurt")!;
        using (var garbage = new AlignedBuffer(Block))
        {
            new Random(5).NextBytes(garbage.Memory.Span);
            await media.WriteAsync(hurt.Segment.StoreBlock * Block, garbage.Memory, durable: true);
        }

        var failure = Assert.ThrowsAsync<IOException>(() => again.LoadAsync(hurt));
        Assert.That(failure!.Message, Does.Contain("'hurt'").And.Contain("store check"));
        Assert.That(failure.InnerException, Is.TypeOf<BlockOverlay.Store.Format.StoreFormatException>(), "the decoder's reason, inside");
        Assert.That(hurt.IsLoaded, Is.False);
        Assert.That((await CrashTestKit.ReadValuesAsync(again, again.Find("whole")!, 0, 2, "the neighbour"))[1], Is.EqualTo(9));
    }

    /// <summary>
    /// A checkpoint never writes an empty map for an instance it did not load: one whose quota
    /// changed, or that was left alone, keeps its segment through checkpoints, a clean close and
    /// a crash; one deleted unloaded frees exactly its blocks.
    /// </summary>
    [Test]
    public async Task Checkpoints_keep_unloaded_maps_redefined_or_not_and_a_delete_frees_an_unloaded_map()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        await using (var store = await UpperStore.OpenAsync(media))
        {
            foreach (var name in new[] { "kept", "requota", "gone" })
            {
                var x = await store.CreateInstanceAsync(name, 16 * Block, null);
                await store.WriteAsync(x, 2, CrashTestKit.Blocks(x.Definition.Id, 2, 3, 10));
                await store.CommitAsync(x);
            }
        }

        var again = await UpperStore.OpenAsync(media);
        long free = again.FreeBlocks;
        await again.SetQuotaAsync("requota", 8 * Block);
        await again.CheckpointAsync();
        await again.DeleteInstanceAsync("gone");
        await again.CheckpointAsync();
        Assert.That(again.Instances.Where(i => i.IsLoaded).Select(i => i.Name), Is.Empty, "loaded instances after the checkpoints");
        Assert.That(again.FreeBlocks, Is.GreaterThanOrEqualTo(free + 3), "the deleted instance's blocks are free");
        await CrashTestKit.CheckSpaceAsync(again, media, "after the delete", exactFreeCount: true);
        var crashed = media.Clone();
        await again.DisposeAsync();

        foreach (var (image, state) in new[] { (crashed, "crashed"), (media, "closed") })
        {
            await CrashTestKit.AssertChecksCleanAsync(image, state);
            await using var store = await UpperStore.OpenAsync(image);
            Assert.That(store.Instances.Select(i => i.Name), Is.EqualTo(new[] { "kept", "requota" }), state);
            Assert.That(store.Find("requota")!.Definition.Quota, Is.EqualTo(8L * Block), state);
            foreach (var x in store.Instances)
            {
                Assert.That((await CrashTestKit.ReadAllAsync(store, x, state))[1..6], Is.EqualTo(new[] { BlockContent.Base, 10, 11, 12, BlockContent.Base }),
                    $"{x.Name} {state}");
            }

            await CrashTestKit.CheckSpaceAsync(store, image, state, exactFreeCount: true);
        }
    }

    /// <summary>
    /// Replay loads the maps of the instances the journal names and no other; what a replayed
    /// write replaced is free, and blocks of unloaded maps stay in use (the space record).
    /// </summary>
    [Test]
    public async Task Replay_loads_only_the_instances_the_journal_names_and_frees_what_it_replaced()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        var store = await UpperStore.OpenAsync(media);
        for (int i = 0; i < 100; i++)
        {
            var x = await store.CreateInstanceAsync($"i{i}", 8 * Block, null);
            await store.WriteAsync(x, 0, CrashTestKit.Blocks(x.Definition.Id, 0, 2, 1));
            await store.CommitAsync(x);
        }

        await store.CheckpointAsync();
        var busy = store.Find("i70")!;
        await store.WriteAsync(busy, 1, CrashTestKit.Blocks(busy.Definition.Id, 1, 2, 50));
        await store.CommitAsync(busy);
        await store.SetQuotaAsync("i3", 4 * Block);
        var crashed = media.Clone(); // not closed: the journal holds the write and the quota

        await using var again = await UpperStore.OpenAsync(crashed);
        Assert.That(again.Instances.Where(i => i.IsLoaded).Select(i => i.Name), Is.EquivalentTo(new[] { "i70", "i3" }), "loaded by replay");
        await CrashTestKit.CheckSpaceAsync(again, crashed, "replayed", exactFreeCount: true);
        Assert.That(await CrashTestKit.ReadAllAsync(again, again.Find("i70")!, "replayed"), Is.EqualTo(new long[] { 1, 50, 51, 0, 0, 0, 0, 0 }));
        await store.DisposeAsync();
    }

    /// <summary>
    /// A store made by main before lazy maps (3ac2ed4; Fixtures/v3-incremental-store.img.gz: 70
    /// instances of 16 blocks, t(3k) with block 3k % 16 written, t05 with 8-9 zeroed, an
    /// incremental checkpoint; then, in the journal only, t10 blocks 1-2 written, t66's quota
    /// set, t21 deleted and "late" made with block 0 written; then a crash) opens with only the
    /// maps its journal names loaded, reads back, counts free space exactly, and its next
    /// checkpoint and reopening keep it all. The bytes are the same format: nothing converts.
    /// </summary>
    [Test]
    public async Task A_store_made_by_main_before_lazy_maps_opens_lazily_and_reads_back()
    {
        var media = await FixtureAsync("v3-incremental-store.img.gz");
        await CrashTestKit.AssertChecksCleanAsync(media, "the fixture as it was left");
        var store = await UpperStore.OpenAsync(media);
        Assert.That(store.Instances.Where(i => i.IsLoaded).Select(i => i.Name), Is.EquivalentTo(new[] { "t10", "t66", "late" }), "loaded at open");
        await AssertFixtureContentAsync(store, "opened");
        await CrashTestKit.CheckSpaceAsync(store, media, "opened", exactFreeCount: true);
        await store.CheckpointAsync();
        var crashed = media.Clone();
        await store.DisposeAsync();
        foreach (var (image, state) in new[] { (crashed, "checkpointed, then crashed"), (media, "closed") })
        {
            await CrashTestKit.AssertChecksCleanAsync(image, state);
            await using var again = await UpperStore.OpenAsync(image);
            await AssertFixtureContentAsync(again, state);
            await CrashTestKit.CheckSpaceAsync(again, image, state, exactFreeCount: true);
        }
    }

    private static async Task AssertFixtureContentAsync(UpperStore store, string state)
    {
        var names = Enumerable.Range(0, 70).Where(i => i != 21).Select(i => $"t{i:D2}").Append("late");
        Assert.That(store.Instances.Select(i => i.Name), Is.EquivalentTo(names), state);
        foreach (var x in store.Instances)
        {
            var expected = new long[16];
            if (x.Name == "late")
            {
                expected[0] = 600;
            }
            else if (int.Parse(x.Name[1..], System.Globalization.CultureInfo.InvariantCulture) is var i && i % 3 == 0)
            {
                expected[i % 16] = 100 + i;
            }

            if (x.Name == "t05")
            {
                expected[8] = expected[9] = BlockContent.Zero;
            }

            if (x.Name == "t10")
            {
                (expected[1], expected[2]) = (500, 501);
            }

            Assert.That(x.Definition.Quota, Is.EqualTo(x.Name == "t66" ? 8L * Block : 0), $"{x.Name}'s quota {state}");
            Assert.That(await CrashTestKit.ReadAllAsync(store, x, state), Is.EqualTo(expected), $"{x.Name} {state}");
        }
    }

    private static async Task<MemoryDevice> FixtureAsync(string name)
    {
        await using var file = File.OpenRead(Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", name));
        await using var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        await gzip.CopyToAsync(bytes);
        var device = new MemoryDevice(bytes.Length);
        device.WriteUnaligned(0, bytes.ToArray());
        return device;
    }

    /// <summary>A device that counts reads, and can hold them (until released) or fail them.</summary>
    private sealed class ReadCountingDevice(MemoryDevice inner) : IBlockDevice
    {
        private long _reads;
        private TaskCompletionSource? _hold;

        public long Reads => Interlocked.Read(ref _reads);

        public bool FailReads { get; set; }

        /// <summary>Completes when a read is being held.</summary>
        public TaskCompletionSource Held { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Size => inner.Size;

        public void HoldReads() => _hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => _hold?.TrySetResult();

        public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
        {
            if (FailReads)
            {
                throw new IOException("read failed (injected)");
            }

            if (_hold is { } hold)
            {
                Held.TrySetResult();
                await hold.Task;
            }

            Interlocked.Increment(ref _reads);
            await inner.ReadAsync(offset, buffer);
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) => inner.WriteAsync(offset, data, durable);

        public ValueTask FlushAsync() => inner.FlushAsync();

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
