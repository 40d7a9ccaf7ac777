using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// DESIGN.md, invariant 2, counted without timing: instances A, B and C share a store; B and C hold
/// 64 MiB of dirty data each, A 4 MiB. A flush of A must write A's 4 MiB and A's metadata and
/// not one byte of B's or C's, and the counters and the device's own write log must agree.
/// In global mode the same flush writes everything (the baseline isolation is measured against).
/// </summary>
[TestFixture]
public sealed class FlushIsolationTests
{
    private const long Neighbour = 64L * MiB, Own = 4L * MiB;
    private const byte OfA = 0xA1, OfB = 0xB2, OfC = 0xC3;

    [Test]
    public async Task An_isolated_flush_writes_its_own_data_and_metadata_and_not_one_byte_of_its_neighbours()
    {
        var memory = new MemoryDevice(256L * MiB);
        var device = new ContentLogDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var (a, b, c) = await DirtyThreeAsync(cache, FlushMode.Isolated);
        long dataStart = DataStart(store);
        device.Clear();

        await a.FlushAsync();

        var writes = device.Writes;
        var dataWrites = writes.Where(w => w.Offset >= dataStart).ToList();
        var blocks = dataWrites.SelectMany(w => BlocksOf(w.Data)).ToList();
        long metadataBytes = writes.Where(w => w.Offset < dataStart).Sum(w => (long)w.Data.Length);
        Assert.Multiple(() =>
        {
            // The device's view.
            Assert.That(blocks.Count * (long)Block, Is.EqualTo(Own), "data bytes that reached the device");
            Assert.That(blocks.Count(IsA), Is.EqualTo(blocks.Count), "every data block written is A's");
            Assert.That(blocks.Count(block => block.Contains(OfB) || block.Contains(OfC)), Is.Zero, "blocks holding any byte of B or C");
            Assert.That(metadataBytes, Is.InRange(Block, 4 * Block), "A's commit: one journal batch");
            // The counters' view, which must agree.
            Assert.That(a.Counters.Flushes, Is.EqualTo(1));
            Assert.That(a.Counters.FlushDataBytes, Is.EqualTo(Own), "A's flush data counter");
            Assert.That(a.Counters.FlushMetaBytes, Is.InRange(1, metadataBytes), "A's flush metadata counter (its commit's bytes in the batch)");
            Assert.That(store.Counters[WriteReason.Flush], Is.EqualTo(Own), "store bytes written for flushes");
            Assert.That(store.Counters[WriteReason.Background], Is.Zero, "store bytes written in the background");
            Assert.That(b.Counters.Flushes + c.Counters.Flushes, Is.Zero);
            // The neighbours are as dirty as before.
            Assert.That(a.DirtyBytes, Is.Zero, "A after its flush");
            Assert.That(b.DirtyBytes, Is.EqualTo(Neighbour), "B after A's flush");
            Assert.That(c.DirtyBytes, Is.EqualTo(Neighbour), "C after A's flush");
        });

        // And the flush made A durable: a kill now keeps A's data, and B and C read as never written.
        await using var after = await UpperStore.OpenAsync(memory.Clone());
        await using var afterCache = new WriteBackCache(after, CacheOptions.FlushOnly);
        await using var a2 = new InstanceExport(afterCache, after.Find("a")!, null);
        await using var b2 = new InstanceExport(afterCache, after.Find("b")!, null);
        byte[] readA = new byte[Own], readB = new byte[MiB];
        await a2.ReadAsync(0, readA);
        await b2.ReadAsync(0, readB);
        Assert.That(readA.All(x => x == OfA), Is.True, "A after a kill right after its flush");
        Assert.That(readB.All(x => x == 0), Is.True, "B, never flushed, after the kill");
        await Task.WhenAll(b.DisposeAsync().AsTask(), c.DisposeAsync().AsTask(), a.DisposeAsync().AsTask());
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task A_global_flush_writes_every_instances_dirty_data()
    {
        var memory = new MemoryDevice(256L * MiB);
        var device = new ContentLogDevice(memory);
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var (a, b, c) = await DirtyThreeAsync(cache, FlushMode.Global);
        long dataStart = DataStart(store);
        long journalBeforeFlush = store.Counters[WriteReason.Journal];
        device.Clear();

        await a.FlushAsync();

        long journalBefore = store.Counters[WriteReason.Journal];
        var blocks = device.Writes.Where(w => w.Offset >= dataStart).SelectMany(w => BlocksOf(w.Data)).ToList();
        long journalWritten = device.Writes.Where(w => w.Offset >= 2 * Block && w.Offset < dataStart).Sum(w => (long)w.Data.Length);
        Assert.Multiple(() =>
        {
            // Three instances commit at once and share journal batches: each batch is counted once.
            Assert.That(journalBefore, Is.EqualTo(journalWritten + journalBeforeFlush), "journal counter against the device's journal writes");
            Assert.That(blocks.Count * (long)Block, Is.EqualTo(Own + (2 * Neighbour)), "data bytes that reached the device");
            Assert.That(blocks.Count(block => block.All(x => x == OfB)) * (long)Block, Is.EqualTo(Neighbour), "B's bytes written by A's flush");
            Assert.That(a.Counters.FlushDataBytes, Is.EqualTo(Own + (2 * Neighbour)), "A's flush pays for everyone");
            Assert.That(b.DirtyBytes + c.DirtyBytes, Is.Zero, "nobody is dirty after a global flush");
        });
        await Task.WhenAll(b.DisposeAsync().AsTask(), c.DisposeAsync().AsTask(), a.DisposeAsync().AsTask());
    }

    /// <summary>A, B and C (in that order), with 4, 64 and 64 MiB of dirty data.</summary>
    private static async Task<(InstanceExport A, InstanceExport B, InstanceExport C)> DirtyThreeAsync(
        WriteBackCache cache, FlushMode modeOfA)
    {
        var a = (await OpenAsync(cache, Neighbour, modeOfA, "a"))[0];
        var neighbours = await OpenAsync(cache, Neighbour, FlushMode.Isolated, "b", "c");
        await FillAsync(neighbours[0], Neighbour, OfB);
        await FillAsync(a, Own, OfA);
        await FillAsync(neighbours[1], Neighbour, OfC);
        Assert.That(cache.DirtyBytes, Is.EqualTo(Own + (2 * Neighbour)), "precondition: all of it is dirty in the cache");
        return (a, neighbours[0], neighbours[1]);
    }

    private static IEnumerable<byte[]> BlocksOf(byte[] data) => data.Chunk(Block);

    private static bool IsA(byte[] block) => block.All(x => x == OfA);
}
