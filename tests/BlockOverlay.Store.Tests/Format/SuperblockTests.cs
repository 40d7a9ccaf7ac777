using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Format;

public class SuperblockTests
{
    private static readonly Superblock Sample = new()
    {
        StoreId = Guid.Parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
        Generation = 7,
        Clean = true,
        DeviceBlocks = 10_000,
        JournalStart = 2,
        JournalBlocks = 64,
        DataStart = 66,
        CheckpointStart = 100,
        CheckpointBytes = 5000,
        CheckpointChecksum = 0x1234,
        ReplayPosition = 5,
        ReplaySequence = 42,
        NextInstanceId = 9,
    };

    private static byte[] Encoded(Superblock sb)
    {
        var block = new byte[Superblock.Size];
        sb.Encode(block);
        return block;
    }

    [Test]
    public void A_superblock_round_trips_every_field()
    {
        Assert.That(Superblock.Decode(Encoded(Sample), "test", 10_000), Is.EqualTo(Sample));
        Assert.That(Sample.CopyBlock, Is.EqualTo(1), "odd generations go to copy B");
    }

    [Test]
    public void A_flip_of_any_byte_of_the_header_or_checksum_is_refused()
    {
        var good = Encoded(Sample);
        foreach (int offset in Enumerable.Range(0, Superblock.HeaderLength).Concat(Enumerable.Range(Superblock.Size - 8, 8)))
        {
            var bad = (byte[])good.Clone();
            bad[offset] ^= 0x40;
            Assert.That(() => Superblock.Decode(bad, "copy A", 10_000), Throws.TypeOf<StoreFormatException>(), $"byte {offset}");
        }
    }

    [Test]
    public void Each_problem_gets_its_own_message()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => Superblock.Decode(new byte[Superblock.Size], "copy A", 10_000),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains("no store here"));

            var flipped = Encoded(Sample);
            flipped[100] ^= 1;
            Assert.That(() => Superblock.Decode(flipped, "copy A", 10_000),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains("checksum"));

            Assert.That(() => Superblock.Decode(Encoded(Sample with { Version = Superblock.CurrentVersion + 1 }), "copy A", 10_000),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains($"version {Superblock.CurrentVersion + 1}"));
            Assert.That(() => Superblock.Decode(Encoded(Sample with { IncompatibleFeatures = 8 }), "copy A", 10_000),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains("features"));
            Assert.That(() => Superblock.Decode(Encoded(Sample), "copy A", 9_999),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains("truncated"));
            Assert.That(() => Superblock.Decode(Encoded(Sample with { DataStart = 70 }), "copy A", 10_000),
                Throws.TypeOf<StoreFormatException>().With.Message.Contains("geometry"));
            Assert.That(Superblock.Decode(Encoded(Sample with { ReadOnlyCompatibleFeatures = 1 }), "copy A", 10_000).RequiresReadOnly, Is.True);
        });
    }
}
