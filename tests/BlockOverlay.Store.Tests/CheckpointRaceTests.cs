using BlockOverlay.Io;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// A checkpoint that takes an instance's map while an older commit of that instance is still on
/// its way to the journal: the checkpoint holds the newer state, and the older commit lands after
/// the checkpoint's replay position. Replay must not map the older records over the newer state
/// (found as a flushed write read back old after a kill, in BlockRangeLockTests).
/// </summary>
public class CheckpointRaceTests
{
    private const int Block = UpperStore.BlockSize;
    private const int JournalBlocks = 64;

    [Test]
    public async Task A_commit_that_lands_after_a_newer_checkpoint_does_not_undo_it()
    {
        var (memory, device) = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Filled(1));

        device.Close();
        var older = store.CommitAsync(x);      // takes "block 0 holds version 1"; held on its way
        await device.Held.Task;
        await store.WriteAsync(x, 0, Filled(2));
        await store.CheckpointAsync();          // takes version 2, replays from where `older` lands
        device.Open();
        await older;
        await store.CommitAsync(x);             // the flush: version 2 is durable now

        Assert.That(await ReadAfterKillAsync(memory), Is.EqualTo(2), "block 0 after a kill");
    }

    [Test]
    public async Task A_commit_that_fails_after_a_newer_checkpoint_is_not_carried_over_it()
    {
        var (memory, device) = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 64 * Block, null);
        await store.WriteAsync(x, 0, Filled(1));

        device.Close();
        var older = store.CommitAsync(x);
        await device.Held.Task;
        await store.WriteAsync(x, 0, Filled(2));
        await store.CheckpointAsync();
        device.Fail(new IOException("the journal write failed"));
        Assert.That(async () => await older, Throws.InstanceOf<IOException>());
        device.Open();
        await store.WriteAsync(x, 1, Filled(3));    // something for the next commit to carry
        await store.CommitAsync(x);                 // carries what the failed one had to: nothing older than the checkpoint

        Assert.That(await ReadAfterKillAsync(memory), Is.EqualTo(2), "block 0 after a kill");
    }

    private static async Task<(MemoryDevice Memory, JournalGate Device)> NewStoreAsync()
    {
        var memory = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(memory, new StoreCreateOptions { JournalBlocks = JournalBlocks });
        return (memory, new JournalGate(memory, journalEnd: (2 + JournalBlocks) * (long)Block));
    }

    /// <summary>The version block 0 of "x" holds after recovery from the device as it is now.</summary>
    private static async Task<byte> ReadAfterKillAsync(MemoryDevice memory)
    {
        await using var reopened = await UpperStore.OpenAsync(memory.Clone());
        var x = reopened.Find("x")!;
        var layout = new List<MappedExtent>();
        var bytes = new byte[Block];
        await reopened.ReadAsync(x, 0, bytes, layout);
        Assert.That(layout.Select(e => e.Kind), Is.EqualTo(new[] { ExtentKind.Upper }), "block 0 is upper data");
        Assert.That(bytes.Distinct().Count(), Is.EqualTo(1), "block 0 holds one version whole");
        return bytes[0];
    }

    private static byte[] Filled(byte version) => Enumerable.Repeat(version, Block).ToArray();
}
