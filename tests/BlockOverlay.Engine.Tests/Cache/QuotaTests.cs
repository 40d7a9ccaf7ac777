using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

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
