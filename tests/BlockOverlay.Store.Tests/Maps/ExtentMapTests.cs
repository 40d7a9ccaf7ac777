using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Maps;

public sealed class ExtentMapTests
{
    private readonly List<MappedExtent> _replaced = [];

    // NUnit runs every test of a fixture on one instance.
    [SetUp]
    public void ForgetReplaced() => _replaced.Clear();

    private static MappedExtent Upper(long block, long length, long store, bool committed = false) =>
        new(block, length, ExtentKind.Upper, store, committed);

    private static MappedExtent Zero(long block, long length, bool committed = false) =>
        new(block, length, ExtentKind.Zero, 0, committed);

    private static MappedExtent Base(long block, long length) => new(block, length, ExtentKind.Base, 0, true);

    private static List<MappedExtent> Lookup(ExtentMap map, long block, long length)
    {
        var result = new List<MappedExtent>();
        map.Lookup(block, length, result);
        return result;
    }

    private void Set(ExtentMap map, long block, long length, ExtentKind kind, long store = 0, bool committed = false) =>
        map.Set(block, length, kind, store, committed, _replaced);

    /// <summary>
    /// An empty map holds no tree node: a store holds thousands of instances with nothing
    /// written, and a leaf is 64 extents (1.5 KiB; a new map allocated 1.7 KB before). A map
    /// emptied again gives its leaf back, and works as before.
    /// </summary>
    [Test]
    public void An_empty_map_allocates_no_leaf_and_an_emptied_one_gives_it_back()
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        var map = new ExtentMap();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(allocated, Is.LessThan(512), "bytes allocated by a new map");
        Assert.That(Lookup(map, 0, 8), Is.EqualTo(new[] { Base(0, 8) }));
        Set(map, 2, 3, ExtentKind.Upper, 40);
        Set(map, 2, 3, ExtentKind.Base);
        map.ValidateStructure();
        Assert.That((map.ExtentCount, map.Extents.Count()), Is.EqualTo((0, 0)), "emptied");
        Set(map, 4, 1, ExtentKind.Zero);
        map.ValidateStructure();
        Assert.That(Lookup(map, 3, 3), Is.EqualTo(new[] { Base(3, 1), Zero(4, 1), Base(5, 1) }));
    }

    [Test]
    public void A_write_to_an_empty_map_is_one_extent_between_base_gaps()
    {
        var map = new ExtentMap();
        Set(map, 10, 5, ExtentKind.Upper, 100);
        Assert.Multiple(() =>
        {
            Assert.That(Lookup(map, 0, 20), Is.EqualTo(new[] { Base(0, 10), Upper(10, 5, 100), Base(15, 5) }));
            Assert.That(map.ExtentCount, Is.EqualTo(1));
            Assert.That(map.UpperBlocks, Is.EqualTo(5));
            Assert.That(_replaced, Is.Empty);
        });
    }

    [Test]
    public void Sequential_store_contiguous_writes_stay_one_extent()
    {
        var map = new ExtentMap(nodeCapacity: 4);
        for (int i = 0; i < 100; i++)
        {
            Set(map, i, 1, ExtentKind.Upper, 500 + i);
        }

        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 100, 500) }));
        Assert.That(map.ExtentCount, Is.EqualTo(1));
    }

    [Test]
    public void A_write_filling_a_hole_merges_with_both_sides()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 8, 4, ExtentKind.Upper, 108);
        Set(map, 4, 4, ExtentKind.Upper, 104);
        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 12, 100) }));
    }

    [Test]
    public void Adjacent_writes_that_are_not_store_contiguous_stay_separate()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 4, 4, ExtentKind.Upper, 200);
        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 4, 100), Upper(4, 4, 200) }));
    }

    [Test]
    public void Extents_of_another_kind_or_commit_state_do_not_merge_until_they_match()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100, committed: true);
        Set(map, 4, 4, ExtentKind.Upper, 104);
        Set(map, 8, 2, ExtentKind.Zero);
        Assert.That(map.ExtentCount, Is.EqualTo(3));

        map.MarkCommitted(4, 4);

        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 8, 100, committed: true), Zero(8, 2) }));
        Assert.That(map.ExtentCount, Is.EqualTo(2));
    }

    [Test]
    public void Zero_extents_merge_whatever_store_block_was_passed()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Zero, store: 7);
        Set(map, 4, 4, ExtentKind.Zero, store: 99);
        Assert.That(map.Extents, Is.EqualTo(new[] { Zero(0, 8) }));
    }

    [Test]
    public void Overwriting_the_middle_splits_and_reports_the_old_store_blocks()
    {
        var map = new ExtentMap();
        Set(map, 0, 10, ExtentKind.Upper, 100);
        Set(map, 3, 4, ExtentKind.Upper, 500);
        Assert.Multiple(() =>
        {
            Assert.That(_replaced, Is.EqualTo(new[] { Upper(3, 4, 103) }));
            Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 3, 100), Upper(3, 4, 500), Upper(7, 3, 107) }));
            Assert.That(map.UpperBlocks, Is.EqualTo(10));
        });
    }

    [Test]
    public void A_range_over_extents_and_gaps_reports_only_what_was_mapped_clipped_to_it()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 6, 2, ExtentKind.Zero, committed: true);
        Set(map, 10, 4, ExtentKind.Upper, 200);

        Set(map, 2, 10, ExtentKind.Zero);

        Assert.Multiple(() =>
        {
            Assert.That(_replaced, Is.EqualTo(new[] { Upper(2, 2, 102), Zero(6, 2, committed: true), Upper(10, 2, 200) }));
            Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 2, 100), Zero(2, 10), Upper(12, 2, 202) }));
            Assert.That(map.UpperBlocks, Is.EqualTo(4));
        });
    }

    [Test]
    public void Setting_base_unmaps_the_range_and_reports_what_it_held()
    {
        var map = new ExtentMap();
        Set(map, 0, 10, ExtentKind.Upper, 100);
        Set(map, 2, 3, ExtentKind.Base);
        Assert.Multiple(() =>
        {
            Assert.That(_replaced, Is.EqualTo(new[] { Upper(2, 3, 102) }));
            Assert.That(Lookup(map, 0, 10), Is.EqualTo(new[] { Upper(0, 2, 100), Base(2, 3), Upper(5, 5, 105) }));
            Assert.That(map.UpperBlocks, Is.EqualTo(7));
            Assert.That(map.ExtentCount, Is.EqualTo(2));
        });
    }

    [Test]
    public void Setting_base_over_base_reports_nothing()
    {
        var map = new ExtentMap();
        Set(map, 0, 2, ExtentKind.Upper, 100);
        Set(map, 5, 10, ExtentKind.Base);
        Assert.That(_replaced, Is.Empty);
        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 2, 100) }));
    }

    [Test]
    public void Lookup_clips_to_the_range_and_fills_gaps_with_base()
    {
        var map = new ExtentMap();
        Set(map, 5, 10, ExtentKind.Upper, 100, committed: true);
        Assert.Multiple(() =>
        {
            Assert.That(Lookup(map, 7, 3), Is.EqualTo(new[] { Upper(7, 3, 102, committed: true) }));
            Assert.That(Lookup(map, 0, 5), Is.EqualTo(new[] { Base(0, 5) }));
            Assert.That(Lookup(map, 14, 4), Is.EqualTo(new[] { Upper(14, 1, 109, committed: true), Base(15, 3) }));
            Assert.That(Lookup(map, 3, 0), Is.Empty);
        });
    }

    [Test]
    public void MarkCommitted_splits_at_the_range_edges()
    {
        var map = new ExtentMap();
        Set(map, 0, 10, ExtentKind.Upper, 100);

        map.MarkCommitted(3, 4);

        var uncommitted = new List<MappedExtent>();
        map.CollectUncommitted(uncommitted);
        Assert.Multiple(() =>
        {
            Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 3, 100), Upper(3, 4, 103, committed: true), Upper(7, 3, 107) }));
            Assert.That(uncommitted, Is.EqualTo(new[] { Upper(0, 3, 100), Upper(7, 3, 107) }));
        });
    }

    [Test]
    public void MarkCommitted_over_gaps_and_committed_extents_changes_nothing()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100, committed: true);
        Set(map, 10, 4, ExtentKind.Upper, 200);

        map.MarkCommitted(0, 10);

        Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 4, 100, committed: true), Upper(10, 4, 200) }));
    }

    [Test]
    public void MarkAllCommitted_commits_everything_and_merges_what_then_matches()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 4, 4, ExtentKind.Upper, 104, committed: true);
        Set(map, 10, 2, ExtentKind.Zero);

        map.MarkAllCommitted();

        var uncommitted = new List<MappedExtent>();
        map.CollectUncommitted(uncommitted);
        Assert.Multiple(() =>
        {
            Assert.That(map.Extents, Is.EqualTo(new[] { Upper(0, 8, 100, committed: true), Zero(10, 2, committed: true) }));
            Assert.That(uncommitted, Is.Empty);
        });
    }

    [Test]
    public void Clear_reports_every_extent_and_empties_the_map()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 10, 2, ExtentKind.Zero, committed: true);
        var removed = new List<MappedExtent>();

        map.Clear(removed);

        Assert.Multiple(() =>
        {
            Assert.That(removed, Is.EqualTo(new[] { Upper(0, 4, 100), Zero(10, 2, committed: true) }));
            Assert.That(map.Extents, Is.Empty);
            Assert.That(map.ExtentCount, Is.Zero);
            Assert.That(map.UpperBlocks, Is.Zero);
            Assert.That(Lookup(map, 0, 20), Is.EqualTo(new[] { Base(0, 20) }));
        });
    }

    [Test]
    public void Enumerating_extents_while_the_map_changes_throws()
    {
        var map = new ExtentMap();
        Set(map, 0, 4, ExtentKind.Upper, 100);
        Set(map, 10, 4, ExtentKind.Upper, 300);

        Assert.That(
            () =>
            {
                foreach (var extent in map.Extents)
                {
                    Set(map, 20, 1, ExtentKind.Zero);
                }
            },
            Throws.InvalidOperationException);
    }

    [Test]
    public void A_huge_disk_costs_only_its_extents()
    {
        const long far = (1L << 52) - 2;
        var map = new ExtentMap();
        Set(map, 0, 1L << 52, ExtentKind.Zero);
        Set(map, far, 1, ExtentKind.Upper, 7);
        Assert.Multiple(() =>
        {
            Assert.That(map.ExtentCount, Is.EqualTo(3));
            Assert.That(Lookup(map, far - 1, 3), Is.EqualTo(new[] { Zero(far - 1, 1), Upper(far, 1, 7), Zero(far + 1, 1) }));
            Assert.That(Lookup(map, (1L << 52) - 1, 2), Is.EqualTo(new[] { Zero((1L << 52) - 1, 1), Base(1L << 52, 1) }));
        });
    }

    [Test]
    public void Rejects_ranges_outside_the_block_limit()
    {
        var map = new ExtentMap();
        Assert.Multiple(() =>
        {
            Assert.That(() => Set(map, -1, 1, ExtentKind.Zero), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => Set(map, 0, -1, ExtentKind.Zero), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => Set(map, ExtentMap.BlockLimit - 1, 2, ExtentKind.Zero), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => Set(map, 0, 1, ExtentKind.Upper, store: -5), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => Set(map, 0, 1, (ExtentKind)3), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => map.Lookup(long.MaxValue, 1, []), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => map.MarkCommitted(5, -1), Throws.TypeOf<ArgumentOutOfRangeException>());
        });
        Assert.That(map.ExtentCount, Is.Zero);
    }

    [Test]
    public void A_range_as_long_as_the_limit_keeps_its_kind_and_state()
    {
        var map = new ExtentMap();
        Set(map, 0, ExtentMap.BlockLimit, ExtentKind.Zero);
        Assert.That(map.Extents, Is.EqualTo(new[] { Zero(0, ExtentMap.BlockLimit) }));
    }

    [Test]
    public void The_last_block_below_the_limit_can_be_mapped()
    {
        var map = new ExtentMap();
        Set(map, ExtentMap.BlockLimit - 1, 1, ExtentKind.Upper, ExtentMap.BlockLimit - 1, committed: true);
        Assert.That(
            Lookup(map, ExtentMap.BlockLimit - 2, 2),
            Is.EqualTo(new[] { Base(ExtentMap.BlockLimit - 2, 1), Upper(ExtentMap.BlockLimit - 1, 1, ExtentMap.BlockLimit - 1, committed: true) }));
    }
}
