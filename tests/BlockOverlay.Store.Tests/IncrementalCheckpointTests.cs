using System.IO.Compression;
using BlockOverlay.Io;
using BlockOverlay.Store.Checking;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Tests.Crash;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// Incremental checkpoints (docs/FORMAT.md, "Checkpoint"): a checkpoint writes what changed since
/// the last one, whatever else the store holds; a store made before them still opens and is
/// converted by its first checkpoint.
/// </summary>
public sealed class IncrementalCheckpointTests
{
    private const int Block = UpperStore.BlockSize;

    /// <summary>
    /// With one busy instance among many, a checkpoint writes the same few blocks whether the
    /// store holds 100 instances or 1,000: a root, one group, one segment, a space page and the
    /// superblock. Before incremental checkpoints it wrote every instance's map every time
    /// (127 KB for 1,000 instances, 10 % of them with 20 extents).
    /// </summary>
    [Test]
    public async Task A_checkpoint_with_one_busy_instance_writes_the_same_bytes_among_100_or_1000_instances()
    {
        var small = await BusyCheckpointBytesAsync(100);
        var large = await BusyCheckpointBytesAsync(1000);
        Assert.That(large.Written, Is.EqualTo(small.Written), "bytes of a checkpoint after one instance changed, 1,000 instances against 100");
        Assert.That(large.Written, Is.LessThanOrEqualTo(8 * Block), "a root, a group, a segment, a space page and the superblock");
        Assert.That(large.Metadata, Is.GreaterThan(5 * large.Written), "precondition: the store's whole metadata is much larger");
    }

    private static async Task<(long Written, long Metadata)> BusyCheckpointBytesAsync(int count)
    {
        var media = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks: 8192, journalBlocks: 256));
        await using var store = await UpperStore.OpenAsync(media);
        for (int i = 0; i < count; i++)
        {
            var x = await store.CreateInstanceAsync($"i{i}", 64 * Block, null);
            if (i % 10 == 0)
            {
                for (int b = 0; b < 20; b++)
                {
                    await store.WriteAsync(x, b * 3, CrashTestKit.Blocks(x.Definition.Id, b * 3, 1, b + 1));
                }

                await store.CommitAsync(x);
            }
        }

        await store.CheckpointAsync();
        var busy = store.Find("i5")!;
        await store.WriteAsync(busy, 7, CrashTestKit.Blocks(busy.Definition.Id, 7, 2, 100));
        await store.CommitAsync(busy);
        media.ClearWriteLog();
        await store.CheckpointAsync();
        long written = media.WriteLog.Sum(w => (long)w.Length);
        await CrashTestKit.CheckSpaceAsync(store, media, $"{count} instances", exactFreeCount: true);
        return (written, store.Info.CheckpointBytes);
    }

    /// <summary>An instance that did not change keeps its segment: the checkpoint neither rewrites nor frees it.</summary>
    [Test]
    public async Task An_unchanged_instance_keeps_its_segment_across_checkpoints_and_reopening()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 1024, journalBlocks: 64);
        var store = await UpperStore.OpenAsync(media);
        var idle = await store.CreateInstanceAsync("idle", 16 * Block, null);
        var busy = await store.CreateInstanceAsync("busy", 16 * Block, null);
        await store.WriteAsync(idle, 2, CrashTestKit.Blocks(idle.Definition.Id, 2, 3, 1));
        await store.CommitAsync(idle);
        await store.CheckpointAsync();
        var before = store.CheckpointRuns.ToHashSet();
        for (int round = 0; round < 5; round++)
        {
            await store.WriteAsync(busy, round, CrashTestKit.Blocks(busy.Definition.Id, round, 1, 10 + round));
            await store.CommitAsync(busy);
            await store.CheckpointAsync();
        }

        Assert.That(store.CheckpointRuns.Intersect(before).Count(), Is.EqualTo(1), "idle's segment is the one part of the first checkpoint still in use");
        await store.DisposeAsync();
        await CrashTestKit.AssertChecksCleanAsync(media, "after a clean close");
        await using var reopened = await UpperStore.OpenAsync(media);
        Assert.That(await CrashTestKit.ReadValuesAsync(reopened, reopened.Find("idle")!, 0, 6, "idle"), Is.EqualTo(new long[] { 0, 0, 1, 2, 3, 0 }));
        Assert.That(await CrashTestKit.ReadValuesAsync(reopened, reopened.Find("busy")!, 0, 6, "busy"), Is.EqualTo(new long[] { 10, 11, 12, 13, 14, 0 }));
        await CrashTestKit.CheckSpaceAsync(reopened, media, "reopened", exactFreeCount: true);
    }

    /// <summary>
    /// A store written by the build before incremental checkpoints (format version 2, one whole
    /// checkpoint, then commits in the journal after a crash; Fixtures/v2-store.img.gz, made by
    /// main at f29f908) opens and reads back; its first checkpoint converts it (incompatible bit
    /// 2: a build before it refuses the store by name), which frees the whole checkpoint.
    /// </summary>
    [Test]
    public async Task A_store_made_before_incremental_checkpoints_opens_reads_back_and_converts()
    {
        var media = await OldStoreAsync();
        Assert.That((await CrashTestKit.ReadSuperblockAsync(media)).IncrementalCheckpoint, Is.False, "precondition: the whole checkpoint");
        await CrashTestKit.AssertChecksCleanAsync(media, "the old store as it was left");

        var store = await UpperStore.OpenAsync(media);
        await AssertOldContentAsync(store, "opened");
        await CrashTestKit.CheckSpaceAsync(store, media, "opened", exactFreeCount: true);
        await store.CheckpointAsync();
        var converted = await CrashTestKit.ReadSuperblockAsync(media);
        Assert.That(converted.IncompatibleFeatures & Superblock.IncrementalCheckpointFeature, Is.Not.Zero, "converted: an older build must refuse it");
        await CrashTestKit.CheckSpaceAsync(store, media, "converted", exactFreeCount: true);
        var crashed = media.Clone();
        await store.DisposeAsync();

        foreach (var (image, state) in new[] { (crashed, "converted, then crashed"), (media, "converted and closed") })
        {
            await CrashTestKit.AssertChecksCleanAsync(image, state);
            await using var again = await UpperStore.OpenAsync(image);
            await AssertOldContentAsync(again, state);
            await CrashTestKit.CheckSpaceAsync(again, image, state, exactFreeCount: true);
        }
    }

    internal static async Task<MemoryDevice> OldStoreAsync()
    {
        await using var file = File.OpenRead(Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "v2-store.img.gz"));
        await using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var bytes = new MemoryStream();
        await gzip.CopyToAsync(bytes);
        var device = new MemoryDevice(bytes.Length);
        device.WriteUnaligned(0, bytes.ToArray());
        return device;
    }

    /// <summary>What the fixture holds: a (64 blocks) with 0-7 written, 3 rewritten and 20-21 written after the checkpoint; b (32, global, quota 16) with 0 and 3 written and 1-2 zeroed; c empty.</summary>
    private static async Task AssertOldContentAsync(UpperStore store, string state)
    {
        Assert.That(store.Instances.Select(i => i.Name), Is.EqualTo(new[] { "a", "b", "c" }), state);
        var a = await CrashTestKit.ReadAllAsync(store, store.Find("a")!, state);
        Assert.That(a[..8], Is.EqualTo(new long[] { 1, 2, 3, 100, 5, 6, 7, 8 }), $"a {state}");
        Assert.That(a[20..22], Is.EqualTo(new long[] { 101, 102 }), $"a {state}");
        Assert.That(a.Count(v => v != BlockContent.Base), Is.EqualTo(10), $"a {state}");
        var b = store.Find("b")!;
        Assert.That((b.Definition.FlushMode, b.Definition.Quota, b.Blocks), Is.EqualTo((FlushMode.Global, 16L * Block, 32L)), $"b {state}");
        Assert.That((await CrashTestKit.ReadAllAsync(store, b, state))[..5], Is.EqualTo(new[] { 200, BlockContent.Zero, BlockContent.Zero, 203, BlockContent.Base }), $"b {state}");
        Assert.That(await CrashTestKit.ReadAllAsync(store, store.Find("c")!, state), Is.All.EqualTo(BlockContent.Base), $"c {state}");
    }

    /// <summary>The checker cross-checks the space record against the maps: a mark flipped in a space page is found.</summary>
    [Test]
    public async Task The_checker_finds_a_space_record_that_disagrees_with_the_maps()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 256, journalBlocks: 64);
        var store = await UpperStore.OpenAsync(media);
        var x = await store.CreateInstanceAsync("x", 16 * Block, null);
        await store.WriteAsync(x, 0, CrashTestKit.Blocks(x.Definition.Id, 0, 4, 1));
        await store.CommitAsync(x);
        await store.DisposeAsync();

        // A page is checksummed by the root: rewrite the page, then the root's record of it, then the superblock's of the root.
        var sb = await CrashTestKit.ReadSuperblockAsync(media);
        var rootBytes = new byte[sb.CheckpointBytes];
        media.ReadUnaligned(sb.CheckpointStart * Block, rootBytes);
        var root = CheckpointParts.DecodeRoot(rootBytes, "root");
        var page = root.SpacePages.Single();
        var bits = new byte[page.Bytes];
        media.ReadUnaligned(page.StoreBlock * Block, bits);
        long free = sb.DeviceBlocks - 1;
        bits[(int)(free % CheckpointParts.BlocksPerSpacePage) / 8] ^= (byte)(1 << (int)(free % 8));
        media.WriteUnaligned(page.StoreBlock * Block, bits);
        var newRoot = CheckpointParts.EncodeRoot(root with { SpacePages = [page with { Checksum = K4os.Hash.xxHash.XXH64.DigestOf(bits) }] });
        media.WriteUnaligned(sb.CheckpointStart * Block, newRoot);
        await Checkpoints.SuperblockPublisher.WriteAsync(media, sb with { CheckpointChecksum = K4os.Hash.xxHash.XXH64.DigestOf(newRoot), Generation = sb.Generation + 1 });

        var report = await StoreChecker.CheckAsync(media);
        Assert.That(report.Count(StoreProblemKind.SpaceRecordMismatch), Is.EqualTo(1), CrashTestKit.Describe(report));
    }
}
