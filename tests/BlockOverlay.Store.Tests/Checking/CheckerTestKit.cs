using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Journal;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Tests.Crash;

namespace BlockOverlay.Store.Tests.Checking;

/// <summary>
/// Stores to check, and the damage done to them on purpose: a small store with two instances
/// holding committed data, left as a crash leaves it (not closed), and journal batches of
/// chosen records appended where the next batch goes, as if the store had written them.
/// </summary>
internal static class CheckerTestKit
{
    private const int Block = CrashTestKit.Block;

    /// <summary>Instances a (id 1) and b (id 2) of 32 blocks, a's blocks 0-3 and b's 0-1 written and committed; not closed.</summary>
    public static async Task<(MemoryDevice Device, UpperStore Store)> TwoInstancesAsync()
    {
        var device = await CrashTestKit.NewStoreAsync(dataBlocks: 256, journalBlocks: 64);
        var store = await UpperStore.OpenAsync(device);
        var a = await store.CreateInstanceAsync("a", 32 * Block, null);
        var b = await store.CreateInstanceAsync("b", 32 * Block, null);
        await store.WriteAsync(a, 0, CrashTestKit.Blocks(a.Definition.Id, 0, 4, 1));
        await store.WriteAsync(b, 0, CrashTestKit.Blocks(b.Definition.Id, 0, 2, 10));
        await store.CommitAsync(a);
        await store.CommitAsync(b);
        return (device, store);
    }

    /// <summary>The store block holding an instance's virtual block.</summary>
    public static long StoreBlockOf(UpperStore store, string name, long virtualBlock)
    {
        var layout = new List<MappedExtent>();
        store.Lookup(store.Find(name)!, virtualBlock, 1, layout);
        return layout.Single(e => e.Kind == ExtentKind.Upper).StoreBlock;
    }

    /// <summary>Writes one batch carrying <paramref name="commit"/> where replay expects the next; returns its first byte.</summary>
    public static async Task<long> AppendBatchAsync(MemoryDevice device, JournalCommit commit)
    {
        var sb = await CrashTestKit.ReadSuperblockAsync(device);
        var (_, position, sequence) = await MetadataJournal.ReadValidPrefixAsync(device, sb);
        var batch = new byte[JournalFormat.BlocksFor(JournalFormat.EncodedSize(commit)) * Block];
        JournalFormat.EncodeBatch(batch, sb.StoreId, sequence, BatchKind.Commits, [commit]);
        long offset = (sb.JournalStart + position) * Block;
        device.WriteUnaligned(offset, batch);
        return offset;
    }

    public static void Flip(MemoryDevice device, long offset)
    {
        var one = new byte[1];
        device.ReadUnaligned(offset, one);
        one[0] ^= 0x5A;
        device.WriteUnaligned(offset, one);
    }

    /// <summary>Every byte of the device, to show a check wrote nothing.</summary>
    public static byte[] Bytes(MemoryDevice device)
    {
        var bytes = new byte[device.Size];
        device.ReadUnaligned(0, bytes);
        return bytes;
    }
}
