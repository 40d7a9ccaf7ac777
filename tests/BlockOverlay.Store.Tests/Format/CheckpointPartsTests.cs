using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Format;

/// <summary>
/// The incremental checkpoint's decoders (docs/FORMAT.md, "Checkpoint"): what they accept is
/// what the checkpointer writes, and anything else is refused with <see cref="StoreFormatException"/>
/// before it sizes a list or a read (a count or a length from the bytes is never trusted first).
/// </summary>
public sealed class CheckpointPartsTests
{
    private static readonly InstanceDefinition Disk = new(65, "disk", 1L << 30, null);

    private static PartRef Group(int count, long index = 1, int bytes = 200, long block = 300) => new(index, block, bytes, count, 0x1234);

    private static PartRef Page(int bytes = CheckpointParts.SpacePageBytes, long block = 400) => new(0, block, bytes, 5, 0x5678);

    private static CheckpointRoot Root(int instances, PartRef[] groups, PartRef[]? pages = null) => new(3, 9, instances, groups, pages ?? [Page()]);

    [Test]
    public void A_root_round_trips()
    {
        var root = Root(3, [Group(2, index: 0), Group(1, index: 1)]);
        var decoded = CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(root), "test");
        Assert.That(decoded.InstanceCount, Is.EqualTo(3));
        Assert.That(decoded.Groups, Is.EqualTo(root.Groups));
        Assert.That(decoded.SpacePages, Is.EqualTo(root.SpacePages));
    }

    [TestCase(0, TestName = "an empty group (the checkpointer drops a group with no instances)")]
    [TestCase(CheckpointParts.GroupSize + 1, TestName = "a group of more instances than a group holds")]
    [TestCase(-1, TestName = "a group count with its top bit set")]
    public void A_root_refuses_a_group_count_no_checkpoint_writes(int count) =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(Root(count, [Group(count)])), "test"));

    [TestCase(4, TestName = "more instances than its groups hold")]
    [TestCase(-1, TestName = "an instance count with its top bit set")]
    public void A_root_refuses_an_instance_count_its_groups_do_not_add_up_to(int instances) =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(Root(instances, [Group(3)])), "test"));

    [TestCase(-1, TestName = "a group length with its top bit set")]
    [TestCase(0, TestName = "a group of no bytes")]
    public void A_root_refuses_a_group_length_no_group_has(int bytes) =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(Root(1, [Group(1, bytes: bytes)])), "test"));

    [TestCase(int.MinValue, TestName = "a space page length with its top bit set")]
    [TestCase(CheckpointParts.SpacePageBytes + 1, TestName = "a space page longer than a page")]
    public void A_root_refuses_a_space_page_of_another_length(int bytes) =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(Root(1, [Group(1)], [Page(bytes)])), "test"));

    [Test]
    public void A_root_refuses_a_part_before_the_first_block() =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeRoot(CheckpointParts.EncodeRoot(Root(1, [Group(1, block: -5)])), "test"));

    [TestCase(-1)]
    [TestCase(CheckpointParts.GroupSize + 1)]
    public void A_group_refuses_a_count_no_group_holds(int count) =>
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup([new GroupEntry(Disk, SegmentRef.None)]), count, "test"));

    /// <summary>2^59 extents of 32 bytes are 2^64 bytes: a length of 0 once the product wraps, which must not pass for "no segment".</summary>
    [Test]
    public void A_group_refuses_an_extent_count_whose_length_wraps()
    {
        var wrapped = new SegmentRef(0, 0, 0, 1L << 59, 0);
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup([new GroupEntry(Disk, wrapped)]), 1, "test"));
    }

    /// <summary>A segment is read into one buffer: 8 GiB of extents is no map a checkpoint writes.</summary>
    [Test]
    public void A_group_refuses_a_segment_longer_than_one_read()
    {
        var huge = new SegmentRef(500, 1L << 33, 0, (1L << 33) / CheckpointParts.ExtentBytes, 0);
        Assert.Throws<StoreFormatException>(() => CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup([new GroupEntry(Disk, huge)]), 1, "test"));
    }

    [Test]
    public void A_group_round_trips()
    {
        var entries = new[] { new GroupEntry(Disk, new SegmentRef(500, 64, 0xabc, 2, 7)), new GroupEntry(Disk with { Id = 66, Name = "b" }, SegmentRef.None) };
        var decoded = CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup(entries), 2, "test");
        Assert.That(decoded, Is.EqualTo(entries).Using<GroupEntry>((a, b) => a.Definition.Id == b.Definition.Id && a.Segment == b.Segment));
    }
}
