using BlockOverlay.Engine.Cache;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>The order of age stays sorted by DirtySince through appends, removals and repositions.</summary>
public class AgeOrderTests
{
    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public void Random_appends_removals_and_repositions_keep_the_order_and_the_set(int seed)
    {
        var rng = new Random(seed);
        var order = new AgeOrder();
        var model = new List<DirtyBlock>();
        long sequence = 0;
        for (int step = 0; step < 2000; step++)
        {
            int what = rng.Next(10);
            if (what < 5 || model.Count == 0)
            {
                var block = new DirtyBlock().Reset(step, ++sequence);
                order.Append(block);
                model.Add(block);
            }
            else if (what < 8)
            {
                var block = model[rng.Next(model.Count)];
                order.Remove(block);
                model.Remove(block);
            }
            else
            {
                // A block written again during its write-back: dirty since a write up to now.
                var block = model[rng.Next(model.Count)];
                block.DirtySince = Math.Max(block.DirtySince, sequence - rng.Next(20));
                order.Reposition(block);
            }

            var walked = new List<DirtyBlock>();
            for (var b = order.Oldest; b is not null; b = b.Younger)
            {
                walked.Add(b);
                Assert.That(b.Younger?.Older ?? b, Is.SameAs(b), "links agree both ways");
            }

            Assert.That(walked, Has.Count.EqualTo(model.Count), $"step {step}: as many blocks");
            Assert.That(walked.ToHashSet().SetEquals(model), Is.True, $"step {step}: the same blocks");
            Assert.That(walked.Select(b => b.DirtySince), Is.Ordered, $"step {step}: oldest first");
        }
    }
}
