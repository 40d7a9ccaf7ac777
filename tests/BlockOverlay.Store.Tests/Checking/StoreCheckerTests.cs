using BlockOverlay.Io;
using BlockOverlay.Store.Checking;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Tests.Crash;
using static BlockOverlay.Store.Tests.Checking.CheckerTestKit;

namespace BlockOverlay.Store.Tests.Checking;

/// <summary>
/// The checker on stores damaged on purpose: each damage is found, counted in its class and
/// described (where, which blocks, whose); a torn journal tail, which every crash may leave, is
/// not a problem; a check writes nothing; a repair fixes only what needs no guess (a superblock
/// copy, leaked blocks) and leaves the rest untouched, saying why.
/// </summary>
public sealed class StoreCheckerTests
{
    private const int Block = CrashTestKit.Block;

    private static async Task<CheckReport> CheckAsync(IBlockDevice device) => await StoreChecker.CheckAsync(device);

    private static void AssertOnly(CheckReport report, StoreProblemKind kind, long count, string mentions)
    {
        string shown = CrashTestKit.Describe(report);
        Assert.Multiple(() =>
        {
            Assert.That(report.Problems.Select(p => (p.Class.Kind, p.Count)), Is.EqualTo(new[] { (kind, count) }), shown);
            Assert.That(report.Problems[0].Examples, Has.Some.Contains(mentions), shown);
        });
    }

    [Test]
    public async Task A_store_left_by_a_crash_checks_clean_and_the_check_writes_nothing()
    {
        var (device, _) = await TwoInstancesAsync();
        var before = Bytes(device);

        var report = await CheckAsync(device);

        Assert.That(report.Clean, Is.True, CrashTestKit.Describe(report));
        Assert.That(report.Notes, Has.Some.Contains("2 instances").And.Some.Contains("not clean"));
        Assert.That(Bytes(device), Is.EqualTo(before), "the check wrote to the device");
    }

    [Test]
    public async Task A_cleanly_closed_store_with_a_checkpoint_checks_clean()
    {
        var (device, store) = await TwoInstancesAsync();
        await store.DisposeAsync();

        var report = await CheckAsync(device);

        Assert.That(report.Clean, Is.True, CrashTestKit.Describe(report));
        Assert.That(report.Notes, Has.Some.StartsWith("checkpoint: ").And.Some.Contains("last shutdown clean"));
    }

    [Test]
    public async Task A_block_mapped_by_two_instances_is_found_naming_both()
    {
        var (device, store) = await TwoInstancesAsync();
        long aBlock = StoreBlockOf(store, "a", 2);
        await AppendBatchAsync(device, new JournalCommit(2, [new MapRecord(7, aBlock, 1)]));

        var report = await CheckAsync(device);

        AssertOnly(report, StoreProblemKind.BlockOwnedTwice, 1, $"store blocks {aBlock}+1");
        Assert.That(report.Problems[0].Examples[0], Does.Contain("instance 'a' blocks 0+4").And.Contain("instance 'b' blocks 7+1"));
        Assert.ThrowsAsync<StoreFormatException>(() => UpperStore.OpenAsync(device), "the store opens the same problem");
    }

    [Test]
    public async Task A_map_entry_over_the_checkpoint_is_a_block_owned_twice()
    {
        var (device, store) = await TwoInstancesAsync();
        await store.DisposeAsync();
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        await AppendBatchAsync(device, new JournalCommit(1, [new MapRecord(9, sb.CheckpointStart, 1)]));

        AssertOnly(await CheckAsync(device), StoreProblemKind.BlockOwnedTwice, 1, "the checkpoint");
    }

    [TestCase(+3, "past the device's end")]
    [TestCase(-1, "on the superblocks or the journal")]
    public async Task A_map_entry_outside_the_data_region_is_found(int where, string said)
    {
        var (device, _) = await TwoInstancesAsync();
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        long storeBlock = where > 0 ? sb.DeviceBlocks + where : sb.JournalStart + 5;
        await AppendBatchAsync(device, new JournalCommit(1, [new MapRecord(6, storeBlock, 2)]));

        AssertOnly(await CheckAsync(device), StoreProblemKind.MappingOutsideDataRegion, 1, said);
    }

    [Test]
    public async Task A_map_entry_past_its_instance_and_an_impossible_definition_are_found()
    {
        var (device, _) = await TwoInstancesAsync();
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        await AppendBatchAsync(device, new JournalCommit(1, [new MapRecord(31, sb.DeviceBlocks - 4, 2)]));
        await AppendBatchAsync(device, new JournalCommit(3, [new CreateInstanceRecord(new InstanceDefinition(3, "c", 5000, null))]));

        var report = await CheckAsync(device);

        Assert.That(report.Count(StoreProblemKind.MappingOutsideInstance), Is.EqualTo(1), CrashTestKit.Describe(report));
        Assert.That(report.Count(StoreProblemKind.BadDefinition), Is.EqualTo(1), CrashTestKit.Describe(report));
        Assert.That(report.Problems.Single(p => p.Class.Kind == StoreProblemKind.BadDefinition).Examples[0], Does.Contain("size 5000"));
    }

    [Test]
    public async Task A_leaked_block_is_found_and_repair_frees_it_saying_it_was_free_after_recovery_anyway()
    {
        var (device, store) = await TwoInstancesAsync();
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        long owned = StoreBlockOf(store, "a", 0);
        // Instance 99 never existed: the first run is nobody's, the second is a's (not leaked).
        await AppendBatchAsync(device, new JournalCommit(99, [new MapRecord(0, sb.DeviceBlocks - 3, 3), new MapRecord(5, owned, 1)]));

        var found = await CheckAsync(device);
        AssertOnly(found, StoreProblemKind.LeakedBlocks, 1, "3 of them owned by nobody");

        var repair = await StoreChecker.RepairAsync(device);

        Assert.Multiple(() =>
        {
            Assert.That(repair.Done, Has.Exactly(1).Contains("leaked blocks (1)"));
            Assert.That(repair.Refused, Is.Empty);
            Assert.That(repair.After.Clean, Is.True, CrashTestKit.Describe(repair.After));
        });
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.Instances.Select(i => i.Name), Is.EquivalentTo(new[] { "a", "b" }));
    }

    [TestCase(0)]
    [TestCase(1)]
    public async Task A_damaged_superblock_copy_is_found_and_repair_rewrites_it_from_the_other(int copy)
    {
        var (device, _) = await TwoInstancesAsync();
        Flip(device, (copy * Block) + 77);

        AssertOnly(await CheckAsync(device), StoreProblemKind.DamagedSuperblockCopy, 1, copy == 0 ? "copy A" : "copy B");
        var repair = await StoreChecker.RepairAsync(device);

        Assert.That(repair.Done, Has.Exactly(1).Contains(copy == 0 ? "copy A (block 0): rewritten from copy B" : "copy B (block 1): rewritten from copy A"));
        Assert.That(repair.After.Clean, Is.True, CrashTestKit.Describe(repair.After));
        using var buffer = new AlignedBuffer(Block);
        await device.ReadAsync(copy * Block, buffer.Memory);
        Assert.DoesNotThrow(() => Superblock.Decode(buffer.Span, "the rewritten copy", device.Size / Block));
    }

    [Test]
    public async Task A_superblock_write_torn_by_a_crash_is_normal_and_repair_rewrites_it()
    {
        var (device, store) = await TwoInstancesAsync();
        var newest = await CrashTestKit.ReadSuperblockAsync(device);
        var next = new byte[Block];
        (newest with { Generation = newest.Generation + 1, ReplayPosition = newest.ReplayPosition + 1 }).Encode(next);
        device.WriteUnaligned((long)((newest.Generation + 1) % 2) * Block, next.AsSpan(0, PowerLossDevice.SectorSize)); // only its first sector landed

        var report = await CheckAsync(device);
        Assert.That(report.Clean, Is.True, CrashTestKit.Describe(report));
        Assert.That(report.Notes, Has.Some.Contains("torn by a crash while being written"));

        var repair = await StoreChecker.RepairAsync(device);
        Assert.That(repair.Done, Has.Exactly(1).Contains("rewritten from"));
        Assert.That(repair.After.Notes, Has.None.Contains("torn"));
        await store.DisposeAsync();
    }

    [Test]
    public async Task Two_damaged_superblock_copies_are_found_and_nothing_else_is_read()
    {
        var (device, _) = await TwoInstancesAsync();
        Flip(device, 77);
        Flip(device, Block + 4090);

        var report = await CheckAsync(device);

        AssertOnly(report, StoreProblemKind.NoSuperblock, 1, "copy B");
        Assert.That((await StoreChecker.RepairAsync(device)).Refused, Has.Exactly(1).Contains("no valid superblock"));
    }

    [Test]
    public void A_device_that_never_held_a_store_is_refused_not_reported()
    {
        var device = new MemoryDevice(64 * Block);
        device.WriteUnaligned(0, Enumerable.Repeat((byte)0x33, 2 * Block).ToArray());

        var error = Assert.ThrowsAsync<StoreFormatException>(() => StoreChecker.CheckAsync(device));
        Assert.That(error!.Message, Does.StartWith("not a store: ").And.Contain("magic"));
    }

    [Test]
    public async Task A_torn_journal_tail_is_normal_after_a_crash_and_checks_clean()
    {
        var (device, _) = await TwoInstancesAsync();
        long batch = await AppendBatchAsync(device, new JournalCommit(1, [new MapRecord(10, 300, 1)]));
        Flip(device, batch + JournalFormat.BatchHeaderBytes + 5); // the payload: the header still names the batch

        var report = await CheckAsync(device);

        Assert.That(report.Clean, Is.True, CrashTestKit.Describe(report));
        Assert.That(report.Notes, Has.Some.Contains("torn by a crash and is cut"));
    }

    [Test]
    public async Task A_damaged_checkpoint_is_found_and_repair_leaves_the_store_untouched()
    {
        var (device, store) = await TwoInstancesAsync();
        await store.DisposeAsync();
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        Flip(device, (sb.CheckpointStart * Block) + 20);
        var before = Bytes(device);

        AssertOnly(await CheckAsync(device), StoreProblemKind.DamagedCheckpoint, 1, "checkpoint");
        var repair = await StoreChecker.RepairAsync(device);

        Assert.That(repair.Refused, Has.Exactly(1).Contains("damaged checkpoint (1): not touched"));
        Assert.That(repair.Done, Is.Empty);
        Assert.That(Bytes(device), Is.EqualTo(before), "the repair wrote to the device");
    }

    [Test]
    public async Task A_damaged_batch_with_intact_batches_after_it_is_a_damaged_journal()
    {
        var (device, store) = await TwoInstancesAsync();
        var a = store.Find("a")!;
        for (int i = 0; i < 3; i++)
        {
            await store.WriteAsync(a, 10 + i, CrashTestKit.Blocks(a.Definition.Id, 10 + i, 1, 100 + i));
            await store.CommitAsync(a);
        }

        // The batches so far: create a, create b, commit a, commit b, three commits of a; zero the fifth's header.
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        device.WriteUnaligned((sb.JournalStart + sb.ReplayPosition + 4) * Block, new byte[JournalFormat.BatchHeaderBytes]);

        AssertOnly(await CheckAsync(device), StoreProblemKind.DamagedJournal, 1, "damaged in the middle");
    }

    [Test]
    public async Task Repair_refuses_a_block_owned_twice_and_writes_nothing()
    {
        var (device, store) = await TwoInstancesAsync();
        await AppendBatchAsync(device, new JournalCommit(2, [new MapRecord(7, StoreBlockOf(store, "a", 1), 1)]));
        var before = Bytes(device);

        var repair = await StoreChecker.RepairAsync(device);

        Assert.That(repair.Refused, Has.Exactly(1).Contains("store block owned twice (1): not touched"));
        Assert.That(repair.After.Count(StoreProblemKind.BlockOwnedTwice), Is.EqualTo(1));
        Assert.That(Bytes(device), Is.EqualTo(before), "the repair wrote to the device");
    }

    /// <summary>A power cut at every write of a random workload (creates, deletes, commits, checkpoints, wraps): each image checks clean.</summary>
    [TestCase(11)]
    [TestCase(12)]
    public async Task After_a_power_cut_at_any_write_of_a_workload_the_store_checks_clean(int seed)
    {
        var images = new List<(MemoryDevice Image, string Context)>();
        StoreWorkload workload = null!;
        var power = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks: 300, journalBlocks: 12));
        var device = new CrashPointDevice(power, new Random(seed), (image, index, _, _, fate) =>
            images.Add((image, $"after a power cut at write {index} ({fate}); {workload.Context}")));
        workload = new StoreWorkload(seed, new WorkloadOptions { MaxInstances = 3, InstanceBlocks = 32 }, device, () => device);
        await workload.OpenAsync();
        device.Armed = true;
        int checkedImages = 0;
        for (int step = 0; step < 300; step++)
        {
            await workload.StepAsync();
            foreach (var (image, context) in images)
            {
                await CrashTestKit.AssertChecksCleanAsync(image, context);
                checkedImages++;
            }

            images.Clear();
        }

        Assert.That(checkedImages, Is.GreaterThan(200), "crash images checked");
    }
}
