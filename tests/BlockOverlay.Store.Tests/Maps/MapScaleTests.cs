using System.Diagnostics;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Maps;

/// <summary>
/// Sizes far beyond what a per-block structure could hold: costs must follow the number of
/// extents and runs, never the virtual or store size.
/// </summary>
public sealed class MapScaleTests
{
    private const long VirtualBlocks = 1L << 40;

    [Test]
    [Category("Slow")] // left out of make check
    public void A_million_scattered_single_block_writes_over_2_to_the_40_blocks_are_fast_and_small()
    {
        const int writes = 1_000_000;
        var random = new Random(7);
        var positions = new long[writes];
        for (int i = 0; i < writes; i++)
        {
            positions[i] = random.NextInt64(VirtualBlocks);
        }

        long memoryBefore = GC.GetTotalMemory(forceFullCollection: true);
        var map = new ExtentMap();
        var replaced = new List<MappedExtent>();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < writes; i++)
        {
            replaced.Clear();
            map.Set(positions[i], 1, ExtentKind.Upper, storeBlock: 2L * i, committed: false, replaced);
        }

        clock.Stop();
        long bytesPerExtent = (GC.GetTotalMemory(forceFullCollection: true) - memoryBefore) / map.ExtentCount;

        int distinct = positions.Distinct().Count();
        TestContext.Out.WriteLine($"{writes:N0} Sets in {clock.Elapsed.TotalMilliseconds:N0} ms; {map.ExtentCount:N0} extents, {bytesPerExtent} bytes each");
        Assert.Multiple(() =>
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(15)), "1,000,000 Sets");
            Assert.That(bytesPerExtent, Is.LessThan(64), "bytes per extent");
            Assert.That(map.ExtentCount, Is.EqualTo(distinct), "one extent per distinct block (store blocks never continue)");
            Assert.That(map.UpperBlocks, Is.EqualTo(distinct));
        });
        map.ValidateStructure();

        var lookup = new List<MappedExtent>();
        for (int i = writes - 1000; i < writes; i++)
        {
            lookup.Clear();
            map.Lookup(positions[i], 1, lookup);
            Assert.That(lookup, Is.EqualTo(new[] { new MappedExtent(positions[i], 1, ExtentKind.Upper, 2L * i, false) }));
        }

        clock.Restart();
        var uncommitted = new List<MappedExtent>();
        map.Set(positions[0], 1, ExtentKind.Upper, storeBlock: 1, committed: false, replaced);
        map.MarkAllCommitted();
        map.Set(positions[1], 1, ExtentKind.Zero, storeBlock: 0, committed: false, replaced);
        map.CollectUncommitted(uncommitted);
        Assert.That(uncommitted, Has.Count.EqualTo(1), "after MarkAllCommitted and one more write");

        replaced.Clear();
        map.Set(0, VirtualBlocks, ExtentKind.Base, 0, committed: true, replaced);
        clock.Stop();
        TestContext.Out.WriteLine($"MarkAllCommitted, then one trim of everything: {clock.Elapsed.TotalMilliseconds:N0} ms");
        Assert.Multiple(() =>
        {
            Assert.That(replaced, Has.Count.EqualTo(distinct), "one trim of everything reports every extent");
            Assert.That(map.ExtentCount, Is.Zero);
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "commit all and trim all");
        });
        map.ValidateStructure();
    }

    [Test]
    public void An_allocator_over_2_to_the_32_blocks_serves_100000_random_requests_quickly()
    {
        const long regionBlocks = 1L << 32;
        var random = new Random(11);
        var allocator = new BlockAllocator(1 << 10, regionBlocks);
        var held = new List<(long Start, long Length)>();
        var runs = new List<(long Start, long Length)>();
        long heldBlocks = 0;
        var clock = Stopwatch.StartNew();
        for (int step = 0; step < 100_000; step++)
        {
            if (held.Count > 0 && random.Next(2) == 0)
            {
                int index = random.Next(held.Count);
                var (start, length) = held[index];
                held[index] = held[^1];
                held.RemoveAt(held.Count - 1);
                allocator.Free(start, length);
                heldBlocks -= length;
                continue;
            }

            runs.Clear();
            long count = random.Next(1, 1 << 16);
            Assert.That(allocator.TryAllocate(count, runs), Is.True);
            held.AddRange(runs);
            heldBlocks += count;
        }

        clock.Stop();
        TestContext.Out.WriteLine($"100,000 requests in {clock.Elapsed.TotalMilliseconds:N0} ms; {allocator.FreeRunCount:N0} free runs");
        Assert.Multiple(() =>
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)), "100,000 requests");
            Assert.That(allocator.FreeBlocks, Is.EqualTo(regionBlocks - heldBlocks));
            Assert.That(allocator.FreeRuns.Sum(r => r.Length), Is.EqualTo(allocator.FreeBlocks));
        });
    }
}
