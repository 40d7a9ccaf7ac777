using BlockOverlay.Io;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// Two commits of one instance at once (two connections flushing): the second must not
/// return before the first one's journal write, which carries both connections' writes,
/// is durable. (A commit marks what it takes as committed before the write completes.)
/// </summary>
public class ConcurrentCommitTests
{
    private const int Block = UpperStore.BlockSize;

    [Test]
    public async Task A_second_commit_waits_for_the_journal_write_of_the_first()
    {
        var memory = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(memory, new StoreCreateOptions { JournalBlocks = 64 });
        var device = new JournalGate(memory, journalEnd: (2 + 64) * (long)Block);
        await using var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(instance, 0, new byte[2 * Block]);

        device.Close();
        var first = store.CommitAsync(instance);
        await device.Held.Task;
        var second = store.CommitAsync(instance);
        await Task.Delay(200);

        Assert.That(second.IsCompleted, Is.False, "the second commit reported durable what the first is still writing");
        device.Open();
        await Task.WhenAll(first, second);
        await using var afterKill = await UpperStore.OpenAsync(memory.Clone());
        Assert.That(afterKill.Find("x")!.UpperBlocks, Is.EqualTo(2), "both writes are durable once both commits returned");
    }
}
