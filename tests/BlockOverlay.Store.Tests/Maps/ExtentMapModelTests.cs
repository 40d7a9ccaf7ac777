using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Maps;

/// <summary>
/// Seeded random operations on an <see cref="ExtentMap"/>, checked after every step against a
/// naive model holding one (kind, store block, committed) per virtual block. Small node
/// capacities make deep trees, so splits, joins and root changes happen often.
/// </summary>
public sealed class ExtentMapModelTests
{
    [TestCase(4, 256, 1)]
    [TestCase(4, 4096, 2, Category = "Slow")] // left out of make check
    [TestCase(6, 1024, 3)]
    [TestCase(64, 4096, 4)]
    [TestCase(64, 64, 5)]
    public void Matches_a_per_block_model_through_random_operations(int nodeCapacity, int space, int seed)
    {
        var random = new Random(seed);
        var map = new ExtentMap(nodeCapacity);
        var model = new Block[space];
        for (int step = 0; step < 4000; step++)
        {
            int roll = random.Next(100);
            string operation;
            if (roll < 60)
            {
                operation = RandomSet(random, map, model);
            }
            else if (roll < 90)
            {
                var (start, length) = RandomRange(random, space);
                map.MarkCommitted(start, length);
                for (int b = start; b < start + length; b++)
                {
                    model[b] = model[b].Kind == ExtentKind.Base ? model[b] : model[b] with { Committed = true };
                }

                operation = $"MarkCommitted({start}, {length})";
            }
            else if (roll < 92)
            {
                map.MarkAllCommitted();
                for (int b = 0; b < space; b++)
                {
                    model[b] = model[b].Kind == ExtentKind.Base ? model[b] : model[b] with { Committed = true };
                }

                operation = "MarkAllCommitted()";
            }
            else if (roll < 93)
            {
                var removed = new List<MappedExtent>();
                map.Clear(removed);
                AssertSame(Expand(removed), Mapped(model, 0, space), $"step {step}: Clear reported");
                Array.Clear(model);
                operation = "Clear()";
            }
            else
            {
                var (start, length) = RandomRange(random, space);
                var result = new List<MappedExtent>();
                map.Lookup(start, length, result);
                CheckCovers(result, start, length, model, $"step {step}: Lookup({start}, {length})");
                operation = "Lookup";
            }

            CheckAgainstModel(map, model, $"step {step} after {operation}");
        }
    }

    /// <summary>A Set of random kind and range; store blocks often continue the block before, so merges happen.</summary>
    private static string RandomSet(Random random, ExtentMap map, Block[] model)
    {
        var (start, length) = RandomRange(random, model.Length);
        var kind = (ExtentKind)random.Next(3);
        bool committed = random.Next(2) == 0;
        long store = start > 0 && model[start - 1].Kind == ExtentKind.Upper && random.Next(2) == 0
            ? model[start - 1].Store + 1
            : random.Next(10_000);
        var before = Mapped(model, start, start + length);
        var replaced = new List<MappedExtent>();

        map.Set(start, length, kind, store, committed, replaced);

        string operation = $"Set({start}, {length}, {kind}, {store}, {committed})";
        AssertSame(Expand(replaced), before, $"{operation} reported as replaced");
        for (int i = 0; i < length; i++)
        {
            model[start + i] = kind switch
            {
                ExtentKind.Upper => new Block(kind, store + i, committed),
                ExtentKind.Zero => new Block(kind, 0, committed),
                _ => default,
            };
        }

        return operation;
    }

    /// <summary>Mostly short ranges, some long ones, so both small edits and big removals are exercised.</summary>
    private static (int Start, int Length) RandomRange(Random random, int space)
    {
        int roll = random.Next(100);
        int maxLength = roll < 70 ? 8 : roll < 95 ? 64 : space;
        int start = random.Next(space);
        int length = Math.Min(random.Next(1, maxLength + 1), space - start);
        return (start, length);
    }

    private static void CheckAgainstModel(ExtentMap map, Block[] model, string when)
    {
        map.ValidateStructure();
        var all = new List<MappedExtent>();
        map.Lookup(0, model.Length, all);
        CheckCovers(all, 0, model.Length, model, when);

        var extents = map.Extents.ToList();
        var uncommitted = new List<MappedExtent>();
        map.CollectUncommitted(uncommitted);
        AssertSame(extents, all.Where(e => e.Kind != ExtentKind.Base).ToList(), $"{when}: Extents");
        AssertSame(uncommitted, extents.Where(e => !e.Committed).ToList(), $"{when}: CollectUncommitted");
        Assert.Multiple(() =>
        {
            Assert.That(extents, Has.Count.EqualTo(map.ExtentCount), $"{when}: ExtentCount");
            Assert.That(map.ExtentCount, Is.EqualTo(MinimalRunCount(model)), $"{when}: ExtentCount is minimal");
            Assert.That(map.UpperBlocks, Is.EqualTo(model.Count(b => b.Kind == ExtentKind.Upper)), $"{when}: UpperBlocks");
        });
        for (int i = 1; i < extents.Count; i++)
        {
            Assert.That(Joinable(extents[i - 1], extents[i]), Is.False, $"{when}: {extents[i - 1]} and {extents[i]} should be one extent");
        }
    }

    /// <summary>Checks that a Lookup result tiles [start, +length) with non-empty extents that read as the model does.</summary>
    private static void CheckCovers(List<MappedExtent> result, int start, int length, Block[] model, string when)
    {
        long next = start;
        foreach (var extent in result)
        {
            Assert.That(extent.VirtualBlock == next && extent.Length > 0, Is.True, $"{when}: {extent} does not follow on at {next}");
            next = extent.End;
        }

        Assert.That(next, Is.EqualTo(start + length), $"{when}: Lookup ends short");
        var actual = new Block[length];
        foreach (var (block, state) in Expand(result))
        {
            actual[block - start] = state;
        }

        AssertSame(actual, model[start..(start + length)], $"{when}: blocks read differently from the model");
    }

    /// <summary>Compares quickly, and through NUnit (for a message naming the difference) only when they differ.</summary>
    private static void AssertSame<T>(IReadOnlyList<T> actual, IReadOnlyList<T> expected, string when)
    {
        if (!actual.SequenceEqual(expected))
        {
            Assert.That(actual, Is.EqualTo(expected), when);
        }
    }

    private static bool Joinable(MappedExtent left, MappedExtent right) =>
        left.End == right.VirtualBlock && left.Kind == right.Kind && left.Committed == right.Committed
        && (left.Kind != ExtentKind.Upper || left.StoreBlock + left.Length == right.StoreBlock);

    /// <summary>The number of maximal runs of blocks that one extent each could describe.</summary>
    private static int MinimalRunCount(Block[] model)
    {
        int runs = 0;
        for (int b = 0; b < model.Length; b++)
        {
            var block = model[b];
            if (block.Kind == ExtentKind.Base)
            {
                continue;
            }

            bool continues = b > 0 && model[b - 1].Kind == block.Kind && model[b - 1].Committed == block.Committed
                && (block.Kind != ExtentKind.Upper || model[b - 1].Store + 1 == block.Store);
            runs += continues ? 0 : 1;
        }

        return runs;
    }

    /// <summary>Every block the extents cover, with its state; Base gaps read as the default block.</summary>
    private static List<(long Block, Block State)> Expand(IEnumerable<MappedExtent> extents)
    {
        var blocks = new List<(long, Block)>();
        foreach (var extent in extents)
        {
            for (long i = 0; i < extent.Length; i++)
            {
                blocks.Add((extent.VirtualBlock + i, extent.Kind switch
                {
                    ExtentKind.Upper => new Block(ExtentKind.Upper, extent.StoreBlock + i, extent.Committed),
                    ExtentKind.Zero => new Block(ExtentKind.Zero, 0, extent.Committed),
                    _ => default,
                }));
            }
        }

        return blocks;
    }

    /// <summary>The mapped (non-Base) blocks of the model in [from, to).</summary>
    private static List<(long Block, Block State)> Mapped(Block[] model, int from, int to)
    {
        var blocks = new List<(long, Block)>();
        for (int b = from; b < to; b++)
        {
            if (model[b].Kind != ExtentKind.Base)
            {
                blocks.Add((b, model[b]));
            }
        }

        return blocks;
    }

    /// <summary>One virtual block of the model; the default is Base.</summary>
    private readonly record struct Block(ExtentKind Kind, long Store, bool Committed);
}
