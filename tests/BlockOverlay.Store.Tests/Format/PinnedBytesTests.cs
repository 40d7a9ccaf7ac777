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
    public void A_whole_checkpoint_of_these_bytes_decodes()
    {
        var (sequence, commitsThrough, instances) = CheckpointFormat.Decode(Convert.FromHexString(SampleCheckpoint), "pinned");
        Assert.That(sequence, Is.EqualTo(77));
        Assert.That(commitsThrough, Is.Zero, "a checkpoint written before commits were numbered holds none: replay skips nothing");
        Assert.That(instances.Select(i => i.Definition), Is.EqualTo(SampleInstances.Select(i => i.Definition)));
        Assert.That(instances.Select(i => i.Extents.ToArray()), Is.EqualTo(SampleInstances.Select(i => i.Extents.ToArray())));
    }
    private static readonly CheckpointRoot SampleRoot = new(77, 1234, 3, [new PartRef(0, 500, 300, 3, 0x1122)], [new PartRef(2, 510, 4096, 17, 0x3344)]);

    private const string SampleRootBytes =
        // header: magic, replay sequence 77, 3 instances, 1 group, 1 space page, reserved, commits through 1234, 64 payload bytes, reserved
        "424F56524F4F5431" + "4D00000000000000" + "03000000" + "01000000" + "01000000" + "00000000" + "D204000000000000" +
        "4000000000000000" + "0000000000000000";

    private const string SampleRootParts =
        // group 0 at block 500, 300 bytes, 3 instances, checksum; space page 2 at block 510, 4096 bytes, 17 blocks marked, checksum
        "0000000000000000" + "F401000000000000" + "2C010000" + "03000000" + "2211000000000000" +
        "0200000000000000" + "FE01000000000000" + "00100000" + "11000000" + "4433000000000000";

    [Test]
    public void A_checkpoint_root_is_these_bytes_and_they_decode()
    {
        var bytes = CheckpointParts.EncodeRoot(SampleRoot);
        Assert.That(Convert.ToHexString(bytes, 0, 56), Is.EqualTo(SampleRootBytes));
        Assert.That(Convert.ToHexString(bytes, 64, bytes.Length - 64), Is.EqualTo(SampleRootParts));
        Assert.That(BitConverter.ToUInt64(bytes, 56), Is.EqualTo(K4os.Hash.xxHash.XXH64.DigestOf([.. bytes[..56], .. bytes[64..]])),
            "XXH64 of bytes 0-55 followed by the references");
        var decoded = CheckpointParts.DecodeRoot(bytes, "pinned");
        Assert.That((decoded.ReplaySequence, decoded.CommitsThrough, decoded.InstanceCount), Is.EqualTo((77UL, 1234UL, 3)));
        Assert.That(decoded.Groups.Concat(decoded.SpacePages), Is.EqualTo(SampleRoot.Groups.Concat(SampleRoot.SpacePages)));
    }

    [Test]
    public void A_group_entry_is_the_definition_then_these_bytes()
    {
        var entry = new GroupEntry(SampleInstances[0].Definition, new SegmentRef(600, 64, 0x55, 2, 10));
        var bytes = CheckpointParts.EncodeGroup([entry]);
        // u16 definition length 42, the definition as in the whole checkpoint above, then where the segment is
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo(SampleCheckpoint[(64 * 2)..((64 + 2 + 42) * 2)] +
            "5802000000000000" + "4000000000000000" + "5500000000000000" + "0200000000000000" + "0A00000000000000"));
        Assert.That(CheckpointParts.DecodeGroup(bytes, 1, "pinned"), Is.EqualTo(new[] { entry }));
        Assert.That(Convert.ToHexString(CheckpointParts.EncodeSegment(SampleInstances[0].Extents)),
            Is.EqualTo(SampleCheckpoint[((64 + 2 + 42 + 8) * 2)..((64 + 2 + 42 + 8 + 64) * 2)]), "a segment: the extents as in the whole checkpoint");
    }
}
