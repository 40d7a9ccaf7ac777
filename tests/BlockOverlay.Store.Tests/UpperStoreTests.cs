using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests;

/// <summary>The store's behaviour over a memory device: round trips, commit scope, reopen.</summary>
public class UpperStoreTests
{
    private const int Block = UpperStore.BlockSize;

    private static async Task<MemoryDevice> NewStoreAsync(long blocks = 4096, long? journalBlocks = null)
    {
        var device = new MemoryDevice(blocks * Block);
        await UpperStore.CreateAsync(device, new StoreCreateOptions { JournalBlocks = journalBlocks });
        return device;
    }

    private static byte[] Pattern(int blocks, int seed)
    {
        var bytes = new byte[blocks * Block];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>What the instance reads: upper data from the store, zeros where Zero, 0xBB marks Base.</summary>
    private static async Task<byte[]> ReadAsync(UpperStore store, StoreInstance instance, long block, int count)
    {
        var data = new byte[count * Block];
        var layout = new List<MappedExtent>();
        await store.ReadAsync(instance, block, data, layout);
        foreach (var e in layout.Where(e => e.Kind != ExtentKind.Upper))
        {
            data.AsSpan((int)((e.VirtualBlock - block) * Block), (int)(e.Length * Block)).Fill(e.Kind == ExtentKind.Base ? (byte)0xBB : (byte)0);
        }

        return data;
    }

    [Test]
    public async Task Written_blocks_read_back_and_unwritten_ones_fall_through_to_the_base()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        var data = Pattern(3, 1);
        await store.WriteAsync(x, 10, data);
        var read = await ReadAsync(store, x, 9, 5);
        Assert.That(read.AsSpan(Block, 3 * Block).ToArray(), Is.EqualTo(data));
        Assert.That(read.AsSpan(0, Block).ToArray(), Is.All.EqualTo(0xBB));
        Assert.That(read.AsSpan(4 * Block).ToArray(), Is.All.EqualTo(0xBB));
    }

    [Test]
    public async Task Reservations_count_against_the_quota_and_become_upper_blocks_when_mapped()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("q", 64 * Block, null, quota: 8 * Block);

        Assert.That(instance.TryReserve(0, 6), Is.True);
        Assert.That(instance.TryReserve(6, 3), Is.False, "6 + 3 blocks is past the quota of 8");
        Assert.That(instance.FootprintBlocks, Is.EqualTo(6), "a refused reservation takes nothing");
        Assert.That(instance.TryReserve(2, 4), Is.True, "blocks already reserved are not new space");
        Assert.That(instance.FootprintBlocks, Is.EqualTo(6), "a block is counted once");

        // Four reserved blocks mapped: the footprint stays 6, now 4 upper and 2 reserved.
        await store.WriteBlocksAsync(instance, [(0, 4)], Pattern(4, 1), WriteReason.Flush);
        Assert.That((instance.UpperBlocks, instance.FootprintBlocks), Is.EqualTo((4L, 6L)));
        // Rewriting upper blocks needs no reservation and grows nothing.
        Assert.That(instance.TryReserve(1, 2), Is.True);
        await store.WriteBlocksAsync(instance, [(1, 2)], Pattern(2, 2), WriteReason.Flush);
        Assert.That(instance.FootprintBlocks, Is.EqualTo(6));

        // Zeroing reserved blocks (their data went away unwritten) gives their room back.
        store.Zero(instance, 4, 2);
        Assert.That(instance.FootprintBlocks, Is.EqualTo(4));
        Assert.That(instance.TryReserve(10, 4), Is.True, "4 upper + 4 reserved: exactly the quota");
        Assert.That(instance.TryReserve(20, 1), Is.False);
        Assert.That(() => instance.TryReserve(60, 5), Throws.InstanceOf<ArgumentOutOfRangeException>(), "past the instance's end");

        // Data already accepted counts past a quota lowered under it; only new space is refused.
        await store.SetQuotaAsync("q", 4 * Block);
        Assert.That(instance.FootprintBlocks, Is.EqualTo(8), "data already accepted is counted past the quota");
        Assert.That(instance.TryReserve(10, 4), Is.True, "no new space");
        Assert.That(instance.TryReserve(30, 1), Is.False);
    }

    [Test]
    public async Task Without_a_quota_reservations_are_still_kept_and_count_once_one_is_set()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("late", 64 * Block, null);

        Assert.That(instance.TryReserve(0, 20), Is.True, "no quota: always room");
        Assert.That(instance.FootprintBlocks, Is.EqualTo(20));
        await store.SetQuotaAsync("late", 8 * Block);
        Assert.That(instance.TryReserve(0, 20), Is.True, "the same blocks again need no new space");
        Assert.That(instance.TryReserve(20, 1), Is.False, "new space past the quota");
        await store.DeleteInstanceAsync("late");
    }

    [Test]
    public async Task Committed_writes_survive_a_reopen_without_close_and_uncommitted_ones_do_not()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Pattern(2, 1));
        await store.CommitAsync(x);
        await store.WriteAsync(x, 1, Pattern(1, 2));  // overwrites committed block 1, not committed
        await store.WriteAsync(x, 5, Pattern(1, 3));  // never committed

        // As after kill -9: the device keeps every completed (durable) write; nothing is closed.
        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        Assert.That(reopened.WasClean, Is.False);
        var again = reopened.Find("x")!;
        Assert.That(await ReadAsync(reopened, again, 0, 2), Is.EqualTo(Pattern(2, 1)), "the committed state");
        Assert.That(await ReadAsync(reopened, again, 5, 1), Is.All.EqualTo(0xBB), "the uncommitted write is gone");
    }

    [Test]
    public async Task A_commit_carries_only_its_own_instance()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        var a = await store.CreateInstanceAsync("a", 64 * Block, null);
        var b = await store.CreateInstanceAsync("b", 64 * Block, null);
        await store.WriteAsync(a, 0, Pattern(1, 1));
        await store.WriteAsync(b, 0, Pattern(1, 2));
        long journalBefore = store.Counters[WriteReason.Journal];
        await store.CommitAsync(a);
        Assert.That(store.Counters[WriteReason.Journal] - journalBefore, Is.EqualTo(Block), "one journal block for a's one record");

        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        Assert.That(await ReadAsync(reopened, reopened.Find("a")!, 0, 1), Is.EqualTo(Pattern(1, 1)));
        Assert.That(await ReadAsync(reopened, reopened.Find("b")!, 0, 1), Is.All.EqualTo(0xBB), "b never asked");
    }

    [Test]
    public async Task Zeroing_reads_as_zeros_over_the_base_and_survives_a_commit()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Pattern(4, 1));
        store.Zero(x, 1, 4);
        await store.CommitAsync(x);
        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        var read = await ReadAsync(reopened, reopened.Find("x")!, 0, 6);
        Assert.That(read.AsSpan(0, Block).ToArray(), Is.EqualTo(Pattern(4, 1).AsSpan(0, Block).ToArray()));
        Assert.That(read.AsSpan(Block, 4 * Block).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(read.AsSpan(5 * Block).ToArray(), Is.All.EqualTo(0xBB));
    }

    [Test]
    public async Task Overwritten_blocks_are_reused_only_after_the_overwrite_is_committed()
    {
        var device = await NewStoreAsync(blocks: 256, journalBlocks: 64);
        await using var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Pattern(8, 1));
        await store.CommitAsync(x);
        long free = store.FreeBlocks;
        await store.WriteAsync(x, 0, Pattern(8, 2));
        Assert.That(store.FreeBlocks, Is.EqualTo(free - 8), "the old blocks are still named by a durable mapping");
        await store.CommitAsync(x);
        Assert.That(store.FreeBlocks, Is.EqualTo(free), "free once the overwrite is durable");

        await store.WriteAsync(x, 20, Pattern(2, 3));
        await store.WriteAsync(x, 20, Pattern(2, 4));
        Assert.That(store.FreeBlocks, Is.EqualTo(free - 2), "blocks never durably mapped are freed at once");
    }

    [Test]
    public async Task Deleting_an_instance_frees_its_blocks_and_survives_a_reopen()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        long empty = store.FreeBlocks;
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Pattern(16, 1));
        await store.CommitAsync(x);
        await store.DeleteInstanceAsync("x");
        Assert.That(store.FreeBlocks, Is.EqualTo(empty));
        Assert.That(store.Find("x"), Is.Null);
        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        Assert.That(reopened.Instances, Is.Empty);
        Assert.That(reopened.FreeBlocks, Is.EqualTo(empty));
    }

    [Test]
    public async Task Names_are_unique_and_sizes_whole_blocks()
    {
        await using var store = await UpperStore.OpenAsync(await NewStoreAsync());
        await store.CreateInstanceAsync("x", Block, null);
        Assert.That(() => store.CreateInstanceAsync("x", Block, null), Throws.TypeOf<InstanceException>());
        Assert.That(() => store.CreateInstanceAsync("y", 1000, null), Throws.TypeOf<InstanceException>());
        Assert.That(() => store.DeleteInstanceAsync("nope"), Throws.TypeOf<InstanceException>());
    }

    [Test]
    public async Task A_full_store_refuses_the_write_and_keeps_what_it_had()
    {
        var device = await NewStoreAsync(blocks: 200, journalBlocks: 64);
        await using var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 1024 * Block, null);
        await store.WriteAsync(x, 0, Pattern(8, 1));
        Assert.That(() => store.WriteAsync(x, 100, Pattern(200, 2)).AsTask(), Throws.TypeOf<StoreFullException>());
        Assert.That(await ReadAsync(store, x, 0, 8), Is.EqualTo(Pattern(8, 1)));
    }

    [Test]
    public async Task A_small_journal_wraps_through_checkpoints_and_everything_reopens()
    {
        var device = await NewStoreAsync(blocks: 2048, journalBlocks: 8);
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 512 * Block, null);
        var expected = new Dictionary<long, int>();
        for (int i = 0; i < 300; i++)
        {
            long block = (i * 37) % 512;
            await store.WriteAsync(x, block, Pattern(1, i));
            expected[block] = i;
            await store.CommitAsync(x);
        }

        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        var again = reopened.Find("x")!;
        foreach (var (block, seed) in expected)
        {
            Assert.That(await ReadAsync(reopened, again, block, 1), Is.EqualTo(Pattern(1, seed)), $"block {block}");
        }
    }

    [Test]
    public async Task A_clean_close_is_seen_at_the_next_open()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 8 * Block, null);
        await store.WriteAsync(x, 0, Pattern(1, 5));
        await store.DisposeAsync();
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.WasClean, Is.True);
        Assert.That(await ReadAsync(reopened, reopened.Find("x")!, 0, 1), Is.EqualTo(Pattern(1, 5)), "close commits everything");
    }

    [Test]
    public async Task A_corrupt_superblock_copy_falls_back_to_the_other_and_two_refuse_to_open()
    {
        var device = await NewStoreAsync();
        device.WriteUnaligned(100, [0xFF]);  // copy A
        await using (var store = await UpperStore.OpenAsync(device))
        {
            Assert.That(store.Instances, Is.Empty);
        }

        device.WriteUnaligned(Block + 100, [0xFF]);
        device.WriteUnaligned(100, [0xFF]);
        var error = Assert.ThrowsAsync<StoreFormatException>(() => UpperStore.OpenAsync(device));
        Assert.That(error!.Message, Does.Contain("copy A").And.Contain("copy B"));
    }

    [Test]
    public async Task A_clone_copies_upper_data_and_zeroed_ranges_into_blocks_of_its_own_and_is_durable()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        var source = await store.CreateInstanceAsync("src", 600 * Block, null, FlushMode.Global, quota: 512 * Block);
        var data = Pattern(300, 5);
        await store.WriteAsync(source, 10, data);
        store.Zero(source, 400, 3);
        await store.CommitAsync(source);

        var reports = new List<(long Done, long Total)>();
        var (clone, copied) = await store.CloneInstanceAsync("src", "copy", (done, total) => reports.Add((done, total)));
        Assert.That(copied, Is.EqualTo(300L * Block));
        Assert.That(reports[^1], Is.EqualTo((300L * Block, 300L * Block)), "progress ends at the total");
        Assert.That(clone.Definition with { Id = 0, Name = "" }, Is.EqualTo(source.Definition with { Id = 0, Name = "" }), "same definition");
        Assert.That(clone.UpperBlocks, Is.EqualTo(300));
        Assert.That(store.FreeBlocks, Is.LessThan(4096 - 300 - 300), "upper blocks are copied, not shared");

        // Durable when it returns: a crash now keeps it.
        await using var reopened = await UpperStore.OpenAsync(device.Clone());
        var again = reopened.Find("copy")!;
        Assert.That(await ReadAsync(reopened, again, 10, 300), Is.EqualTo(data));
        var layout = new List<MappedExtent>();
        reopened.Lookup(again, 400, 3, layout);
        Assert.That(layout.Select(e => e.Kind), Is.EqualTo(new[] { ExtentKind.Zero }));
    }

    [Test]
    public async Task A_stopped_or_impossible_clone_leaves_no_instance_behind()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var source = await store.CreateInstanceAsync("src", 600 * Block, null);
        await store.WriteAsync(source, 0, Pattern(512, 6));

        using var stop = new CancellationTokenSource();
        Assert.CatchAsync<OperationCanceledException>(() => store.CloneInstanceAsync("src", "copy", (_, _) => stop.Cancel(), stop.Token));
        Assert.That(store.Find("copy"), Is.Null, "what the stopped clone made is removed");
        Assert.ThrowsAsync<InstanceException>(() => store.CloneInstanceAsync("nope", "copy"));
        Assert.ThrowsAsync<InstanceException>(() => store.CloneInstanceAsync("src", "src"), "the name is taken");
        Assert.That(store.Instances.Select(i => i.Name), Is.EqualTo(new[] { "src" }));
    }
}
