using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Maps;

public sealed class BlockAllocatorTests
{
    private static List<(long Start, long Length)> Allocate(BlockAllocator allocator, long count)
    {
        var runs = new List<(long Start, long Length)>();
        Assert.That(allocator.TryAllocate(count, runs), Is.True, $"allocating {count} blocks");
        return runs;
    }

    [Test]
    public void The_whole_region_starts_as_one_free_run()
    {
        var allocator = new BlockAllocator(100, 1000);
        Assert.Multiple(() =>
        {
            Assert.That(allocator.FreeRuns, Is.EqualTo(new[] { (100L, 1000L) }));
            Assert.That(allocator.FreeBlocks, Is.EqualTo(1000));
            Assert.That(allocator.FreeRunCount, Is.EqualTo(1));
        });
    }

    [Test]
    public void Consecutive_allocations_are_contiguous()
    {
        var allocator = new BlockAllocator(100, 1000);
        Assert.Multiple(() =>
        {
            Assert.That(Allocate(allocator, 10), Is.EqualTo(new[] { (100L, 10L) }));
            Assert.That(Allocate(allocator, 5), Is.EqualTo(new[] { (110L, 5L) }));
            Assert.That(Allocate(allocator, 1), Is.EqualTo(new[] { (115L, 1L) }));
            Assert.That(allocator.FreeRuns, Is.EqualTo(new[] { (116L, 984L) }));
        });
    }

    [Test]
    public void Allocations_continue_at_the_cursor_even_when_a_smaller_hole_fits()
    {
        var allocator = new BlockAllocator(0, 1000);
        Allocate(allocator, 20);
        allocator.Free(5, 5);

        Assert.That(Allocate(allocator, 5), Is.EqualTo(new[] { (20L, 5L) }));
    }

    [Test]
    public void When_the_cursor_run_is_too_short_the_shortest_run_that_fits_is_taken()
    {
        // Free runs after setup: [10, 18) 8 blocks, [30, 34) 4 blocks, [50, 56) 6 blocks, [70, 100) with the cursor at 100.
        var allocator = new BlockAllocator(0, 100);
        Allocate(allocator, 100);
        allocator.Free(10, 8);
        allocator.Free(30, 4);
        allocator.Free(50, 6);
        allocator.Free(70, 30);

        Assert.That(Allocate(allocator, 5), Is.EqualTo(new[] { (50L, 5L) }));
        Assert.That(Allocate(allocator, 1), Is.EqualTo(new[] { (55L, 1L) }), "then on from the cursor");
    }

    [Test]
    public void A_request_no_run_can_hold_takes_whole_runs_in_address_order_from_the_cursor_wrapping()
    {
        var allocator = new BlockAllocator(0, 100);
        Allocate(allocator, 100);
        allocator.Free(10, 3);
        allocator.Free(30, 4);
        allocator.Free(50, 6);
        allocator.Free(40, 2);
        Assert.That(Allocate(allocator, 2), Is.EqualTo(new[] { (40L, 2L) }), "best fit, leaving the cursor at 42");

        Assert.Multiple(() =>
        {
            Assert.That(Allocate(allocator, 11), Is.EqualTo(new[] { (50L, 6L), (10L, 3L), (30L, 2L) }));
            Assert.That(allocator.FreeRuns, Is.EqualTo(new[] { (32L, 2L) }));
            Assert.That(allocator.FreeBlocks, Is.EqualTo(2));
        });
    }

    [Test]
    public void A_request_larger_than_free_space_fails_and_changes_nothing()
    {
        var allocator = new BlockAllocator(0, 100);
        Allocate(allocator, 50);
        allocator.Free(10, 10);
        var before = allocator.FreeRuns.ToList();
        var runs = new List<(long Start, long Length)> { (-1, -1) };

        Assert.Multiple(() =>
        {
            Assert.That(allocator.TryAllocate(61, runs), Is.False);
            Assert.That(runs, Is.EqualTo(new[] { (-1L, -1L) }));
            Assert.That(allocator.FreeRuns, Is.EqualTo(before));
            Assert.That(allocator.FreeBlocks, Is.EqualTo(60));
        });
        Assert.That(Allocate(allocator, 60).Sum(r => r.Length), Is.EqualTo(60), "exactly what is free still fits");
    }

    [Test]
    public void Freeing_merges_with_free_neighbours_on_both_sides()
    {
        var allocator = new BlockAllocator(0, 30);
        Allocate(allocator, 30);
        allocator.Free(0, 10);
        allocator.Free(20, 10);
        Assert.That(allocator.FreeRunCount, Is.EqualTo(2));

        allocator.Free(10, 10);

        Assert.Multiple(() =>
        {
            Assert.That(allocator.FreeRuns, Is.EqualTo(new[] { (0L, 30L) }));
            Assert.That(allocator.FreeRunCount, Is.EqualTo(1));
            Assert.That(allocator.FreeBlocks, Is.EqualTo(30));
        });
    }

    [TestCase(5L, 1L, TestName = "Freeing a free block throws")]
    [TestCase(0L, 11L, TestName = "Freeing a range ending in free space throws")]
    [TestCase(15L, 10L, TestName = "Freeing a range starting in free space throws")]
    [TestCase(0L, 30L, TestName = "Freeing a range around free space throws")]
    public void Double_free_throws_and_changes_nothing(long start, long length)
    {
        var allocator = new BlockAllocator(0, 30);
        Allocate(allocator, 30);
        allocator.Free(5, 1);
        allocator.Free(10, 10);
        var before = allocator.FreeRuns.ToList();

        Assert.That(() => allocator.Free(start, length), Throws.InvalidOperationException.With.Message.Contains("Double free"));
        Assert.That(allocator.FreeRuns, Is.EqualTo(before));
    }

    [TestCase(0L, 1L)]
    [TestCase(99L, 2L)]
    [TestCase(1099L, 2L)]
    [TestCase(1100L, 1L)]
    [TestCase(long.MaxValue, 1L)]
    public void Freeing_outside_the_region_throws(long start, long length)
    {
        var allocator = new BlockAllocator(100, 1000);
        Allocate(allocator, 1000);

        Assert.That(() => allocator.Free(start, length), Throws.InvalidOperationException.With.Message.Contains("data region"));
        Assert.That(allocator.FreeBlocks, Is.Zero);
    }

    [Test]
    public void MarkAllocated_takes_a_range_out_of_a_free_run()
    {
        var allocator = new BlockAllocator(0, 100);
        allocator.MarkAllocated(40, 10);
        Assert.Multiple(() =>
        {
            Assert.That(allocator.FreeRuns, Is.EqualTo(new[] { (0L, 40L), (50L, 50L) }));
            Assert.That(allocator.FreeBlocks, Is.EqualTo(90));
        });
    }

    [TestCase(35L, 10L)]
    [TestCase(45L, 10L)]
    [TestCase(40L, 1L)]
    [TestCase(30L, 30L)]
    public void MarkAllocated_of_a_range_not_all_free_throws_and_changes_nothing(long start, long length)
    {
        var allocator = new BlockAllocator(0, 100);
        allocator.MarkAllocated(40, 10);
        var before = allocator.FreeRuns.ToList();

        Assert.That(() => allocator.MarkAllocated(start, length), Throws.InvalidOperationException);
        Assert.That(allocator.FreeRuns, Is.EqualTo(before));
    }

    [Test]
    public void An_empty_region_has_nothing_to_give()
    {
        var allocator = new BlockAllocator(10, 0);
        var runs = new List<(long Start, long Length)>();
        Assert.Multiple(() =>
        {
            Assert.That(allocator.TryAllocate(1, runs), Is.False);
            Assert.That(allocator.FreeRuns, Is.Empty);
            Assert.That(() => allocator.Free(10, 1), Throws.InvalidOperationException);
        });
    }

    [Test]
    public void Rejects_negative_arguments()
    {
        var allocator = new BlockAllocator(0, 10);
        Assert.Multiple(() =>
        {
            Assert.That(() => new BlockAllocator(-1, 10), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => new BlockAllocator(1, long.MaxValue), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => allocator.TryAllocate(-1, []), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => allocator.Free(0, 0), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => allocator.MarkAllocated(0, -1), Throws.TypeOf<ArgumentOutOfRangeException>());
        });
    }
}
