using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Format;

/// <summary>
/// Known values encode to exactly these bytes (taken from the format as stores on disk have it),
/// and these bytes decode to the known values: existing stores keep opening.
/// </summary>
public class PinnedBytesTests
{
    private static readonly Guid StoreId = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");

    private static readonly Superblock SampleSuperblock = new()
    {
        StoreId = StoreId,
        ReadOnlyCompatibleFeatures = 0x0102,
        CompatibleFeatures = 0x0304,
        Generation = 7,
        Clean = true,
        DeviceBlocks = 10_000,
        JournalStart = 2,
        JournalBlocks = 64,
        DataStart = 66,
        CheckpointStart = 100,
        CheckpointBytes = 5000,
        CheckpointChecksum = 0x1122334455667788,
        ReplayPosition = 5,
        ReplaySequence = 42,
        NextInstanceId = 9,
    };

    private const string SuperblockHeader =
        "424F5653544F5245" + "02000000" + "98000000" + "0000000000000000" + "0201000000000000" + "0403000000000000" +
        "3C2D1E0F5A4B78698796A5B4C3D2E1F0" + "0700000000000000" + "00100000" + "01000000" + "1027000000000000" +
        "0200000000000000" + "4000000000000000" + "4200000000000000" + "6400000000000000" + "8813000000000000" +
        "8877665544332211" + "0500000000000000" + "2A00000000000000" + "09000000" + "00000000";

    private const string SuperblockChecksum = "68974044B24AACB6";

    private static readonly JournalCommit[] SampleCommits =
    [
        new(3, [new MapRecord(10, 5000, 16), new ZeroRecord(100, 2)]),
        new(4, [new CreateInstanceRecord(new InstanceDefinition(4, "web", 1 << 30, new BaseIdentity("/b.raw", 12345, 0xABCDEF), FlushMode.Volatile, true, 8192))]),
        new(5, [new DeleteInstanceRecord(), new SetFlushModeRecord(FlushMode.Global), new SetQuotaRecord(4096)]),
    ];

    private const string SampleBatch =
        // batch header: magic, sequence 9, 1 block, 243 payload bytes, kind 1, 3 commits, store id, reserved, checksum
        "424F564A524E4C31" + "0900000000000000" + "01000000" + "F3000000" + "01000000" + "03000000" +
        "3C2D1E0F5A4B78698796A5B4C3D2E1F0" + "0000000000000000" + "F827F55E9F7CA74A" +
        // commit of instance 3: Map(10 -> 5000, 16 blocks), Zero(100, 2 blocks)
        "434D4954" + "03000000" + "02000000" + "38000000" + "0000000000000000" + "F6B5877A6DF2C013" +
        "01" + "00" + "2000" + "5661D51A" + "0A00000000000000" + "8813000000000000" + "1000000000000000" +
        "02" + "00" + "1800" + "C0872015" + "6400000000000000" + "0200000000000000" +
        // commit of instance 4: CreateInstance
        "434D4954" + "04000000" + "01000000" + "3A000000" + "0000000000000000" + "B95B0D0D8C2B1C1E" +
        "10" + "00" + "3A00" + "001A9AD9" + "04000000" + "0000004000000000" + "3930000000000000" + "EFCDAB0000000000" +
        "0300" + "776562" + "0600" + "2F622E726177" + "82" + "0020000000000000" +
        // commit of instance 5: DeleteInstance, SetFlushMode(global), SetQuota(4096)
        "434D4954" + "05000000" + "03000000" + "21000000" + "0000000000000000" + "FADCA66D6026A3BB" +
        "11" + "00" + "0800" + "055DCC02" +
        "12" + "00" + "0900" + "31F79238" + "01" +
        "13" + "00" + "1000" + "41DA58ED" + "0010000000000000";

    private static readonly CheckpointInstance[] SampleInstances =
    [
        new(new InstanceDefinition(1, "a", 4096 * 100, null), [new(0, 10, false, 500), new(20, 5, true, 0)]),
        new(new InstanceDefinition(2, "b", 4096 * 8, new BaseIdentity("/b.raw", 999, 7), FlushMode.Global, false, 4096), []),
    ];

    private const string SampleCheckpoint =
        // header: magic, replay sequence 77, 2 instances, reserved, 174 payload bytes, reserved, checksum
        "424F56434B505431" + "4D00000000000000" + "02000000" + "00000000" + "AE00000000000000" +
        "000000000000000000000000000000000000000000000000" + "8D76C1AABA9E5072" +
        // instance 1: definition (42 bytes), 2 extents
        "2A00" + "01000000" + "0040060000000000" + "0000000000000000" + "0000000000000000" + "0100" + "61" + "0000" + "00" +
        "0000000000000000" + "0200000000000000" +
        "0000000000000000" + "0A00000000000000" + "F401000000000000" + "0100000000000000" +
        "1400000000000000" + "0500000000000000" + "0000000000000000" + "0200000000000000" +
        // instance 2: definition (48 bytes), no extents
        "3000" + "02000000" + "0080000000000000" + "E703000000000000" + "0700000000000000" + "0100" + "62" +
        "0600" + "2F622E726177" + "01" + "0010000000000000" + "0000000000000000";

    [Test]
    public void A_superblock_is_these_bytes()
    {
        var block = new byte[Superblock.Size];
        SampleSuperblock.Encode(block);
        Assert.That(Convert.ToHexString(block, 0, Superblock.HeaderLength), Is.EqualTo(SuperblockHeader));
        Assert.That(block.AsSpan(Superblock.HeaderLength, Superblock.Size - 8 - Superblock.HeaderLength).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(Convert.ToHexString(block, Superblock.Size - 8, 8), Is.EqualTo(SuperblockChecksum));
    }

    [Test]
    public void Those_superblock_bytes_open()
    {
        var block = new byte[Superblock.Size];
        Convert.FromHexString(SuperblockHeader).CopyTo(block, 0);
        Convert.FromHexString(SuperblockChecksum).CopyTo(block, Superblock.Size - 8);
        Assert.That(Superblock.Decode(block, "pinned", 10_000), Is.EqualTo(SampleSuperblock));
    }

    [Test]
    public void A_journal_batch_is_these_bytes_and_they_decode()
    {
        var block = new byte[Superblock.Size];
        Assert.That(JournalFormat.EncodeBatch(block, StoreId, 9, BatchKind.Commits, SampleCommits), Is.EqualTo(1));
        int length = SampleBatch.Length / 2;
        Assert.That(Convert.ToHexString(block, 0, length), Is.EqualTo(SampleBatch));
        Assert.That(block.AsSpan(length).ContainsAnyExcept((byte)0), Is.False, "zero padding to the block boundary");

        var pinned = new byte[Superblock.Size];
        Convert.FromHexString(SampleBatch).CopyTo(pinned, 0);
        Assert.That(JournalFormat.TryReadHeader(pinned, StoreId, 9, 256, out var header), Is.True);
        Assert.That(header, Is.EqualTo(new BatchHeader(9, 1, 243, BatchKind.Commits, 3)));
        Assert.That(JournalFormat.IsIntact(pinned, header), Is.True);
        var commits = JournalFormat.DecodeCommits(pinned, header, "pinned");
        Assert.That(commits.Select(c => c.InstanceId), Is.EqualTo(SampleCommits.Select(c => c.InstanceId)));
        Assert.That(commits.Select(c => c.Number), Is.All.Zero, "commits written before they were numbered are never skipped");
        for (int i = 0; i < commits.Count; i++)
        {
            Assert.That(commits[i].Records, Is.EqualTo(SampleCommits[i].Records), $"commit {i}");
        }
    }

    [Test]
    public void A_checkpoint_is_these_bytes_and_they_decode()
    {
        Assert.That(Convert.ToHexString(CheckpointFormat.Encode(77, 0, SampleInstances)), Is.EqualTo(SampleCheckpoint));
        var (sequence, commitsThrough, instances) = CheckpointFormat.Decode(Convert.FromHexString(SampleCheckpoint), "pinned");
        Assert.That(sequence, Is.EqualTo(77));
        Assert.That(commitsThrough, Is.Zero, "a checkpoint written before commits were numbered holds none: replay skips nothing");
        Assert.That(instances.Select(i => i.Definition), Is.EqualTo(SampleInstances.Select(i => i.Definition)));
        Assert.That(instances.Select(i => i.Extents.ToArray()), Is.EqualTo(SampleInstances.Select(i => i.Extents.ToArray())));
    }
}
