using BlockOverlay.Engine.Cache;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// Write-back batches are staged in reused buffers (a fresh one per flush batch was most of the
/// server's CPU beside a noisy neighbour), and a reused buffer's old bytes never reach the store.
/// </summary>
[TestFixture]
public sealed class StagingBuffersTests
{
    [Test]
    public void A_large_buffer_is_reused_and_no_more_than_the_kept_number_is_held()
    {
        using var staging = new StagingBuffers(largestBlocks: 2048);
        var first = staging.Rent(300);
        Assert.That(first.Length, Is.EqualTo(2048 * Block), "large ones are all the largest batch's size");
        staging.Return(first);
        Assert.That(staging.Rent(2048), Is.SameAs(first), "given back, taken again: nothing mapped, zeroed or faulted in");

        var rented = Enumerable.Range(0, StagingBuffers.Kept + 2).Select(_ => staging.Rent(1024)).ToList();
        rented.ForEach(staging.Return);
        var again = Enumerable.Range(0, StagingBuffers.Kept + 2).Select(_ => staging.Rent(1024)).ToList();
        Assert.That(again.Count(rented.Contains), Is.EqualTo(StagingBuffers.Kept), "past the kept number, buffers are freed");
        again.ForEach(staging.Return);

        var small = staging.Rent(256);
        Assert.That(small.Length, Is.EqualTo(256 * Block), "a background batch's size comes from the shared pool");
        staging.Return(small);
    }

    [Test]
    public async Task A_smaller_batch_in_a_reused_buffer_writes_only_its_own_blocks()
    {
        await using var memory = new MemoryDevice(64L << 20);
        await using (var store = await NewStoreAsync(memory))
        await using (var cache = new WriteBackCache(store, CacheOptions.FlushOnly))
        {
            var export = (await OpenAsync(cache, 8 * MiB, FlushMode.Isolated, "vm"))[0];
            await FillAsync(export, 3 * MiB, 0xA1);
            await export.FlushAsync(); // one 3 MiB batch: the buffer is left full of 0xA1
            await export.WriteAsync(4 * MiB, Filled(2 * Block, 0xB2), WriteFlags.None);
            await export.FlushAsync(); // two blocks, in the same buffer
            await export.DisposeAsync();
        }

        await using var reopened = await UpperStore.OpenAsync(memory.Clone());
        await using var readCache = new WriteBackCache(reopened, CacheOptions.FlushOnly);
        await using var read = new Engine.Instances.InstanceExport(readCache, reopened.Find("vm")!, null);
        byte[] data = new byte[8 * MiB];
        await read.ReadAsync(0, data);
        Assert.That(data.AsSpan(0, 3 * MiB).IndexOfAnyExcept((byte)0xA1), Is.EqualTo(-1));
        Assert.That(data.AsSpan(3 * MiB, MiB).IndexOfAnyExcept((byte)0), Is.EqualTo(-1));
        Assert.That(data.AsSpan(4 * MiB, 2 * Block).IndexOfAnyExcept((byte)0xB2), Is.EqualTo(-1));
        Assert.That(data.AsSpan(4 * MiB + (2 * Block)).IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "nothing of the buffer's old bytes past the batch");
    }
}
