using System.Reflection;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Format;

/// <summary>
/// The on-disk tables pinned, the way SPDK pins its structs with static asserts: every field's
/// offset and size as docs/FORMAT.md draws them, each header's fields contiguous and its size fixed.
/// A change here is a format change: a new format version, never an edit of these numbers.
/// </summary>
public class LayoutTests
{
    private static (string Name, int Offset, int Size)[] FieldsOf(Type layout) =>
        layout.GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (f.Name, f.GetValue(null)) switch
            {
                (var n, U8Field x) => (n, x.Offset, 1),
                (var n, U16Field x) => (n, x.Offset, 2),
                (var n, U32Field x) => (n, x.Offset, 4),
                (var n, U64Field x) => (n, x.Offset, 8),
                (var n, BytesField x) => (n, x.Offset, x.Size),
                var other => throw new InvalidOperationException($"{layout.Name}.{other.Name} is not a field"),
            })
            .ToArray();

    private static void AssertTable(Type layout, params (string Name, int Offset, int Size)[] expected) =>
        Assert.That(FieldsOf(layout), Is.EqualTo(expected), layout.Name);

    [Test]
    public void The_superblock_fields_are_where_the_format_says()
    {
        AssertTable(typeof(SuperblockLayout),
            ("Magic", 0, 8), ("Version", 8, 4), ("HeaderLength", 12, 4), ("IncompatibleFeatures", 16, 8),
            ("ReadOnlyCompatibleFeatures", 24, 8), ("CompatibleFeatures", 32, 8), ("StoreId", 40, 16),
            ("Generation", 56, 8), ("BlockSize", 64, 4), ("Flags", 68, 4), ("DeviceBlocks", 72, 8),
            ("JournalStart", 80, 8), ("JournalBlocks", 88, 8), ("DataStart", 96, 8), ("CheckpointStart", 104, 8),
            ("CheckpointBytes", 112, 8), ("CheckpointChecksum", 120, 8), ("ReplayPosition", 128, 8),
            ("ReplaySequence", 136, 8), ("NextInstanceId", 144, 4), ("Reserved", 148, 4), ("Checksum", 4088, 8));
        Assert.That(Superblock.HeaderLength, Is.EqualTo(152));
        Assert.That(Superblock.Size, Is.EqualTo(4096));
    }

    [Test]
    public void The_journal_fields_are_where_the_format_says()
    {
        AssertTable(typeof(BatchLayout),
            ("Magic", 0, 8), ("Sequence", 8, 8), ("Blocks", 16, 4), ("PayloadBytes", 20, 4), ("Kind", 24, 4),
            ("CommitCount", 28, 4), ("StoreId", 32, 16), ("Reserved", 48, 8), ("Checksum", 56, 8));
        AssertTable(typeof(CommitLayout),
            ("Magic", 0, 4), ("InstanceId", 4, 4), ("RecordCount", 8, 4), ("RecordsBytes", 12, 4), ("Number", 16, 8), ("Checksum", 24, 8));
        AssertTable(typeof(RecordLayout), ("Type", 0, 1), ("Reserved", 1, 1), ("Length", 2, 2), ("Checksum", 4, 4));
        AssertTable(typeof(MapBody), ("VirtualBlock", 0, 8), ("StoreBlock", 8, 8), ("Length", 16, 8));
        AssertTable(typeof(ZeroBody), ("VirtualBlock", 0, 8), ("Length", 8, 8));
        AssertTable(typeof(SetFlushModeBody), ("ModeByte", 0, 1));
        AssertTable(typeof(SetQuotaBody), ("Quota", 0, 8));
        AssertTable(typeof(DefinitionLayout), ("Id", 0, 4), ("VirtualSize", 4, 8), ("BaseSize", 12, 8), ("BaseFingerprint", 20, 8));
        Assert.That((JournalFormat.BatchHeaderBytes, JournalFormat.CommitHeaderBytes, JournalFormat.RecordHeaderBytes), Is.EqualTo((64, 32, 8)));
    }

    [Test]
    public void The_checkpoint_fields_are_where_the_format_says()
    {
        AssertTable(typeof(CheckpointLayout),
            ("Magic", 0, 8), ("ReplaySequence", 8, 8), ("InstanceCount", 16, 4), ("Reserved", 20, 4),
            ("PayloadBytes", 24, 8), ("CommitsThrough", 32, 8), ("Reserved2", 40, 16), ("Checksum", 56, 8));
        AssertTable(typeof(ExtentLayout), ("VirtualBlock", 0, 8), ("Length", 8, 8), ("StoreBlock", 16, 8), ("Kind", 24, 8));
        Assert.That(CheckpointFormat.HeaderBytes, Is.EqualTo(64));
    }

    [Test]
    public void The_incremental_checkpoint_fields_are_where_the_format_says()
    {
        AssertTable(typeof(RootLayout),
            ("Magic", 0, 8), ("ReplaySequence", 8, 8), ("InstanceCount", 16, 4), ("GroupCount", 20, 4), ("SpacePageCount", 24, 4),
            ("Reserved", 28, 4), ("CommitsThrough", 32, 8), ("PayloadBytes", 40, 8), ("Reserved2", 48, 8), ("Checksum", 56, 8));
        AssertTable(typeof(PartLayout), ("Index", 0, 8), ("StoreBlock", 8, 8), ("Bytes", 16, 4), ("Count", 20, 4), ("Checksum", 24, 8));
        AssertTable(typeof(EntryLayout), ("SegmentBlock", 0, 8), ("SegmentBytes", 8, 8), ("SegmentChecksum", 16, 8), ("ExtentCount", 24, 8),
            ("UpperBlocks", 32, 8));
        Assert.That((CheckpointParts.RootHeaderBytes, CheckpointParts.PartBytes, CheckpointParts.ExtentBytes), Is.EqualTo((64, 32, 32)));
        Assert.That((CheckpointParts.GroupSize, CheckpointParts.SpacePageBytes, CheckpointParts.BlocksPerSpacePage), Is.EqualTo((64, 4096, 32768L)));
    }

    [TestCase(typeof(SuperblockLayout))]
    [TestCase(typeof(BatchLayout))]
    [TestCase(typeof(CommitLayout))]
    [TestCase(typeof(RecordLayout))]
    [TestCase(typeof(CheckpointLayout))]
    [TestCase(typeof(ExtentLayout))]
    [TestCase(typeof(RootLayout))]
    [TestCase(typeof(PartLayout))]
    [TestCase(typeof(EntryLayout))]
    public void A_header_has_no_gap_and_no_overlap_before_its_checksum(Type layout)
    {
        var fields = FieldsOf(layout).Where(f => f.Name != "Checksum" || layout != typeof(SuperblockLayout)).ToArray();
        for (int i = 1; i < fields.Length; i++)
        {
            Assert.That(fields[i].Offset, Is.EqualTo(fields[i - 1].Offset + fields[i - 1].Size), $"{layout.Name}.{fields[i].Name}");
        }
    }
}
