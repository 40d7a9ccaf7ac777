using BlockOverlay.Io;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Device errors (EIO, ENOSPC) injected into chosen writes: the call that hit one fails with
/// the <see cref="IOException"/> and leaves no trace; the store keeps working when the device
/// heals, and nothing acknowledged before is lost, checked after a kill (a reopen of a copy of
/// the media without closing). Also the store running out of space.
/// </summary>
public sealed class FaultTests
{
    private const int Block = CrashTestKit.Block;

    /// <summary>A store over a fault-injecting device over memory, and the geometry to aim faults with.</summary>
    private sealed class Rig
    {
        public required MemoryDevice Media { get; init; }
        public required FaultInjectingDevice Device { get; init; }
        public required Superblock Superblock { get; init; }
        public required UpperStore Store { get; init; }

        public static async Task<Rig> CreateAsync(long dataBlocks = 512, long journalBlocks = 64)
        {
            var media = await CrashTestKit.NewStoreAsync(dataBlocks, journalBlocks);
            var device = new FaultInjectingDevice(media);
            return new Rig
            {
                Media = media,
                Device = device,
                Superblock = await CrashTestKit.ReadSuperblockAsync(media),
                Store = await UpperStore.OpenAsync(device),
            };
        }

        public FaultRule FailJournalWrite(int count = 1, InjectedError error = InjectedError.IoError) =>
            Device.FailNext(DeviceOperation.Write, count, error, Superblock.JournalStart * Block, Superblock.JournalBlocks * Block);

        public FaultRule FailDataWrite(int count = 1, InjectedError error = InjectedError.IoError) =>
            Device.FailNext(DeviceOperation.Write, count, error, Superblock.DataStart * Block, (Superblock.DeviceBlocks - Superblock.DataStart) * Block);

        public FaultRule FailSuperblockWrite() => Device.FailNext(DeviceOperation.Write, 1, InjectedError.IoError, 0, 2 * Block);

        /// <summary>kill -9: what the media holds now, opened without closing the store.</summary>
        public Task<UpperStore> KillAndReopenAsync() => UpperStore.OpenAsync(Media.Clone());

        public async Task<long> WriteAsync(StoreInstance instance, long block, long serial)
        {
            await Store.WriteAsync(instance, block, CrashTestKit.Blocks(instance.Definition.Id, block, 1, serial));
            return serial;
        }
    }

    private static async Task AssertReadsAsync(UpperStore store, string name, long[] expected, string context)
    {
        var instance = store.Find(name);
        Assert.That(instance, Is.Not.Null, $"instance {name} {context}");
        Assert.That(await CrashTestKit.ReadAllAsync(store, instance!, context), Is.EqualTo(expected), $"{name} {context}");
    }

    [TestCase(InjectedError.IoError)]
    [TestCase(InjectedError.NoSpace)]
    public async Task A_write_whose_data_write_fails_throws_and_leaves_no_trace(InjectedError error)
    {
        var rig = await Rig.CreateAsync();
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        var expected = new long[16];
        expected[5] = await rig.WriteAsync(x, 5, 1);
        expected[6] = await rig.WriteAsync(x, 6, 2);
        await rig.Store.CommitAsync(x);
        expected[7] = await rig.WriteAsync(x, 7, 3);   // acknowledged, not committed
        long free = rig.Store.FreeBlocks;
        long upper = x.UpperBlocks;

        rig.FailDataWrite(error: error);
        var thrown = Assert.ThrowsAsync<IOException>(() => rig.Store.WriteAsync(x, 5, CrashTestKit.Blocks(x.Definition.Id, 5, 4, 10)).AsTask());
        Assert.That(thrown!.HResult, Is.EqualTo((int)error), "the device's errno comes through");
        Assert.That(rig.Store.FreeBlocks, Is.EqualTo(free), "the blocks allocated for the failed write are free again");
        Assert.That(x.UpperBlocks, Is.EqualTo(upper));
        await AssertReadsAsync(rig.Store, "x", expected, "after the failed write");

        await rig.Store.CommitAsync(x);
        await CrashTestKit.CheckSpaceAsync(rig.Store, rig.Media, "after the failed write and a commit", exactFreeCount: true);
        await using var reopened = await rig.KillAndReopenAsync();
        await AssertReadsAsync(reopened, "x", expected, "after a kill");
    }

    [Test]
    public async Task A_commit_whose_journal_write_fails_throws_and_the_next_commit_makes_its_writes_durable()
    {
        var rig = await Rig.CreateAsync();
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        var y = await rig.Store.CreateInstanceAsync("y", 16 * Block, null);
        var expected = new long[16];
        expected[0] = await rig.WriteAsync(x, 0, 1);
        await rig.Store.CommitAsync(x);
        var committed = (long[])expected.Clone();
        for (int b = 1; b <= 3; b++)
        {
            expected[b] = await rig.WriteAsync(x, b, 10 + b);
        }

        rig.Store.Zero(x, 0, 1);
        expected[0] = BlockContent.Zero;

        rig.FailJournalWrite();
        Assert.ThrowsAsync<IOException>(() => rig.Store.CommitAsync(x), "the commit whose journal write fails");
        await AssertReadsAsync(rig.Store, "x", expected, "after the failed commit (nothing changes in memory)");
        await using (var killed = await rig.KillAndReopenAsync())
        {
            var values = await CrashTestKit.ReadAllAsync(killed, killed.Find("x")!, "after a kill right after the failed commit");
            for (int b = 0; b < 16; b++)
            {
                Assert.That(values[b], Is.EqualTo(committed[b]).Or.EqualTo(expected[b]), $"block {b} after a kill right after the failed commit");
            }
        }

        // Newer writes after the failure: the retried records must not override them.
        expected[2] = await rig.WriteAsync(x, 2, 20);
        await rig.WriteAsync(y, 0, 21);
        await rig.Store.CommitAsync(x);
        await CrashTestKit.CheckSpaceAsync(rig.Store, rig.Media, "after the retried commit", exactFreeCount: false);
        await using var reopened = await rig.KillAndReopenAsync();
        await AssertReadsAsync(reopened, "x", expected, "after the next commit succeeded and a kill");
        await AssertReadsAsync(reopened, "y", new long[16], "y never committed");
    }

    [Test]
    public async Task A_full_store_refuses_writes_with_StoreFullException_and_loses_nothing_acknowledged()
    {
        var rig = await Rig.CreateAsync(dataBlocks: 64, journalBlocks: 16);
        var x = await rig.Store.CreateInstanceAsync("x", 256 * Block, null);
        var expected = new long[256];
        long serial = 0;
        int written = 0;
        while (true)
        {
            long free = rig.Store.FreeBlocks;
            try
            {
                await rig.WriteAsync(x, written, ++serial);
            }
            catch (StoreFullException)
            {
                Assert.That(rig.Store.FreeBlocks, Is.EqualTo(free), "a refused write takes nothing");
                break;
            }

            expected[written++] = serial;
            if (written % 4 == 0)
            {
                await rig.Store.CommitAsync(x);
            }
        }

        Assert.That(written, Is.GreaterThan(16), "precondition: the store took some writes first");
        Assert.ThrowsAsync<StoreFullException>(() => rig.WriteAsync(x, 0, ++serial), "an overwrite needs new blocks too");
        Assert.ThrowsAsync<StoreFullException>(() => rig.Store.WriteAsync(x, 100, CrashTestKit.Blocks(x.Definition.Id, 100, 8, 1000)).AsTask());
        await AssertReadsAsync(rig.Store, "x", expected, "when full");
        await rig.Store.CommitAsync(x);

        // Zeroing gives space back once committed; writes go through again.
        rig.Store.Zero(x, 0, 8);
        Array.Fill(expected, BlockContent.Zero, 0, 8);
        await rig.Store.CommitAsync(x);
        expected[200] = await rig.WriteAsync(x, 200, ++serial);
        await rig.Store.CommitAsync(x);
        await CrashTestKit.CheckSpaceAsync(rig.Store, rig.Media, "after filling up and trimming", exactFreeCount: true);

        await using (var killed = await rig.KillAndReopenAsync())
        {
            await AssertReadsAsync(killed, "x", expected, "after a kill");
        }

        // A full store still closes cleanly (its checkpoint has room) and reopens with everything.
        await rig.Store.DisposeAsync();
        await using var reopened = await UpperStore.OpenAsync(rig.Media);
        Assert.That(reopened.WasClean, Is.True);
        await AssertReadsAsync(reopened, "x", expected, "after a clean close");
    }

    [Test]
    public async Task A_read_that_fails_throws_and_changes_nothing()
    {
        var rig = await Rig.CreateAsync();
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        var expected = new long[16];
        expected[3] = await rig.WriteAsync(x, 3, 1);
        rig.Device.FailNext(DeviceOperation.Read, 1);
        Assert.ThrowsAsync<IOException>(() => rig.Store.ReadAsync(x, 0, new byte[16 * Block], []).AsTask());
        await AssertReadsAsync(rig.Store, "x", expected, "after the failed read");
    }

    /// <summary>
    /// A checkpoint that fails (its superblock write hits EIO) has made nothing durable, so the
    /// writes it would have covered must still go out with the next commit: that commit
    /// succeeds, so after a kill they must read back.
    /// </summary>
    [Test]
    public async Task A_failed_checkpoint_does_not_swallow_the_next_commit()
    {
        var rig = await Rig.CreateAsync();
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        var expected = new long[16];
        expected[4] = await rig.WriteAsync(x, 4, 1);

        rig.FailSuperblockWrite();
        Assert.ThrowsAsync<IOException>(() => rig.Store.CheckpointAsync());
        await rig.Store.CommitAsync(x);   // succeeds: the write is acknowledged durable

        await using var reopened = await rig.KillAndReopenAsync();
        await AssertReadsAsync(reopened, "x", expected, "after a failed checkpoint, a successful commit and a kill");
    }

    /// <summary>A checkpoint that fails gives back the blocks it took, and those its instances were to free.</summary>
    [Test]
    public async Task A_failed_checkpoint_leaks_no_space()
    {
        var rig = await Rig.CreateAsync();
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        await rig.WriteAsync(x, 4, 1);
        await rig.Store.CommitAsync(x);
        await rig.WriteAsync(x, 4, 2);   // the old block waits for a commit to be freed

        rig.FailSuperblockWrite();
        Assert.ThrowsAsync<IOException>(() => rig.Store.CheckpointAsync());
        await rig.Store.CommitAsync(x);
        await CrashTestKit.CheckSpaceAsync(rig.Store, rig.Media, "after a failed checkpoint and a commit", exactFreeCount: true);
    }

    /// <summary>
    /// A delete whose journal write fails reports the failure and keeps the instance — also on
    /// the media: here the journal is full, so the delete's commit first checkpoints (without
    /// the instance, which is already unlisted) and then its batch write fails.
    /// </summary>
    [Test]
    public async Task A_failed_delete_keeps_the_instance_also_after_a_kill()
    {
        var rig = await Rig.CreateAsync(journalBlocks: 16);
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        var y = await rig.Store.CreateInstanceAsync("y", 16 * Block, null);
        var expected = new long[16];
        expected[1] = await rig.WriteAsync(y, 1, 1);
        await rig.Store.CommitAsync(y);
        await FillJournalAsync(rig, x);

        long checkpoints = rig.Store.Counters[WriteReason.Checkpoint];
        rig.FailJournalWrite();
        Assert.ThrowsAsync<IOException>(() => rig.Store.DeleteInstanceAsync("y"));
        Assert.That(rig.Store.Counters[WriteReason.Checkpoint], Is.GreaterThan(checkpoints), "precondition: the delete found the journal full");
        Assert.That(rig.Store.Find("y"), Is.Not.Null, "the delete failed: y is still there");
        await AssertReadsAsync(rig.Store, "y", expected, "after the failed delete");

        await using var reopened = await rig.KillAndReopenAsync();
        await AssertReadsAsync(reopened, "y", expected, "after the failed delete and a kill");
    }

    /// <summary>
    /// A create whose journal write fails after the checkpoint it needed for room has already
    /// listed the instance: that checkpoint made the instance durable, so the create reports
    /// success (what it reports matches what a restart will find), a second create of the
    /// name is refused, and after a kill the store opens with exactly one instance of that name.
    /// </summary>
    [Test]
    public async Task A_create_made_durable_by_its_checkpoint_succeeds_even_if_its_record_fails()
    {
        var rig = await Rig.CreateAsync(journalBlocks: 16);
        var x = await rig.Store.CreateInstanceAsync("x", 16 * Block, null);
        await FillJournalAsync(rig, x);

        long checkpoints = rig.Store.Counters[WriteReason.Checkpoint];
        rig.FailJournalWrite();
        var z = await rig.Store.CreateInstanceAsync("z", 16 * Block, null);
        Assert.That(rig.Store.Counters[WriteReason.Checkpoint], Is.GreaterThan(checkpoints), "precondition: the create found the journal full");
        Assert.That(rig.Store.Find("z"), Is.SameAs(z));
        Assert.ThrowsAsync<InstanceException>(() => rig.Store.CreateInstanceAsync("z", 16 * Block, null));

        var expected = new long[16];
        expected[2] = await rig.WriteAsync(z, 2, 1);
        await rig.Store.CommitAsync(z);

        UpperStore? reopened = null;
        Assert.DoesNotThrowAsync(async () => reopened = await rig.KillAndReopenAsync(), "the store opens after a kill");
        Assert.That(reopened!.Instances.Select(i => i.Name), Is.EquivalentTo(new[] { "x", "z" }));
        await AssertReadsAsync(reopened, "z", expected, "after a kill");
    }

    /// <summary>
    /// A checkpoint that fails while a commit waits for it: the commit fails too, but the next
    /// commit must make the newest writes durable — what the failed checkpoint had taken (an
    /// older map) must not be journaled after the newer records and roll them back — and no
    /// block may be lost from the free count.
    /// </summary>
    [Test]
    public async Task A_checkpoint_failing_under_a_waiting_commit_rolls_nothing_back_and_leaks_nothing()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 256, journalBlocks: 64);
        var sb = await CrashTestKit.ReadSuperblockAsync(media);
        var faults = new FaultInjectingDevice(media);
        var device = new PausingDevice(faults);
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 16 * Block, null);
        async Task WriteAsync(long block, long serial) =>
            await store.WriteAsync(x, block, CrashTestKit.Blocks(x.Definition.Id, block, 1, serial));

        await WriteAsync(1, 1);
        await store.CommitAsync(x);
        await WriteAsync(1, 2);

        // A checkpoint takes x's map (block 1 = write 2) and is held at its write.
        var paused = device.PauseNextWrite(sb.DataStart * Block, media.Size);
        var checkpoint = Task.Run(() => store.CheckpointAsync());
        await paused.Arrived.WaitAsync(TimeSpan.FromSeconds(10));

        // Meanwhile x overwrites block 1 and commits: the commit's record is written, then it
        // waits for the checkpoint, which fails.
        await WriteAsync(1, 3);
        var commit = store.CommitAsync(x);
        faults.FailNext(DeviceOperation.Write, 1, InjectedError.IoError, sb.DataStart * Block, media.Size - (sb.DataStart * Block));
        paused.Release();
        Assert.ThrowsAsync<IOException>(() => checkpoint, "the checkpoint");
        try
        {
            await commit;   // failing with the checkpoint is fine; succeeding is fine too
        }
        catch (IOException)
        {
        }

        await store.CommitAsync(x);   // succeeds: everything written so far is durable
        var expected = new long[16];
        expected[1] = 3;
        await AssertReadsAsync(store, "x", expected, "in memory");
        await using (var reopened = await UpperStore.OpenAsync(media.Clone()))
        {
            await AssertReadsAsync(reopened, "x", expected, "after the next commit succeeded and a kill");
        }

        await CrashTestKit.CheckSpaceAsync(store, media, "after the failed checkpoint and the next commit", exactFreeCount: true);
    }

    /// <summary>Commits one-block batches until the next batch cannot fit without a checkpoint.</summary>
    private static async Task FillJournalAsync(Rig rig, StoreInstance filler)
    {
        // From a fresh checkpoint the journal is empty; a 1-block batch needs 2 free blocks
        // (the head never comes within one block of the tail), so J - 1 of them fill it.
        await rig.Store.CheckpointAsync();
        long checkpoints = rig.Store.Counters[WriteReason.Checkpoint];
        for (long i = 0; i < rig.Superblock.JournalBlocks - 1; i++)
        {
            await rig.WriteAsync(filler, i % filler.Blocks, 500 + i);
            await rig.Store.CommitAsync(filler);
        }

        Assert.That(rig.Store.Counters[WriteReason.Checkpoint], Is.EqualTo(checkpoints), "precondition: filling took no checkpoint");
    }
}
