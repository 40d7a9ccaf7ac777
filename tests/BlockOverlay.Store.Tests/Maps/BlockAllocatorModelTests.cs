using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Maps;

/// <summary>
/// Seeded random allocations, frees and recoveries on a <see cref="BlockAllocator"/>, checked
/// after every step against a bitmap with one flag per block, including the allocation policy.
/// </summary>
public sealed class BlockAllocatorModelTests
{
    private const long First = 100;

    [TestCase(2000, 1)]
    [TestCase(2000, 2)]
    [TestCase(300, 3)]
    [TestCase(60, 4)]
    public void Matches_a_bitmap_model_through_random_operations(int regionBlocks, int seed)
    {
        var run = new ModelRun(regionBlocks, seed);
        for (int step = 0; step < 5000; step++)
        {
            string operation = run.RandomStep();
            run.CheckAgainstModel($"step {step} after {operation}");
        }
    }

    private sealed class ModelRun(int regionBlocks, int seed)
    {
        private readonly Random _random = new(seed);
        private readonly BlockAllocator _allocator = new(First, regionBlocks);
        private readonly bool[] _free = Enumerable.Repeat(true, regionBlocks).ToArray();
        private readonly List<(long Start, long Length)> _owned = [];
        private long _cursor = First;

        public string RandomStep()
        {
            int roll = _random.Next(100);
            return roll switch
            {
                < 45 => Allocate(),
                < 80 => FreeOwned(),
                < 87 => MarkFreeAllocated(),
                < 92 => DoubleFree(),
                < 96 => MarkAllocatedOverAllocated(),
                _ => FreeOutsideRegion(),
            };
        }

        public void CheckAgainstModel(string when)
        {
            var expected = FreeRunsOfModel();
            Assert.Multiple(() =>
            {
                Assert.That(_allocator.FreeRuns, Is.EqualTo(expected), $"{when}: FreeRuns (maximal)");
                Assert.That(_allocator.FreeRunCount, Is.EqualTo(expected.Count), $"{when}: FreeRunCount");
                Assert.That(_allocator.FreeBlocks, Is.EqualTo(_free.Count(f => f)), $"{when}: FreeBlocks");
            });
        }

        private string Allocate()
        {
            long count = _random.Next(100) < 90 ? _random.Next(1, 40) : _random.Next(1, regionBlocks + 10);
            long freeBlocks = _free.Count(f => f);
            var freeRuns = FreeRunsOfModel();
            var runs = new List<(long Start, long Length)>();
            string operation = $"TryAllocate({count})";

            bool allocated = _allocator.TryAllocate(count, runs);

            Assert.That(allocated, Is.EqualTo(count <= freeBlocks), $"{operation} with {freeBlocks} free");
            if (!allocated)
            {
                Assert.That(runs, Is.Empty, $"{operation} failed but returned runs");
                return operation;
            }

            Assert.That(runs.Sum(r => r.Length), Is.EqualTo(count), $"{operation} returned another total");
            foreach (var (start, length) in runs)
            {
                Assert.That(length, Is.Positive, $"{operation} returned an empty run");
                for (long b = start; b < start + length; b++)
                {
                    Assert.That(b >= First && b < First + regionBlocks && _free[b - First], Is.True, $"{operation} handed out block {b}, not free");
                    _free[b - First] = false;
                }

                _owned.Add((start, length));
            }

            CheckPolicy(operation, count, freeRuns, runs);
            _cursor = runs[^1].Start + runs[^1].Length;
            return operation;
        }

        /// <summary>At the cursor if the run there holds it all; else one run if any holds it; else whole runs in address order from the cursor.</summary>
        private void CheckPolicy(string operation, long count, List<(long Start, long Length)> freeRuns, List<(long Start, long Length)> runs)
        {
            var atCursor = freeRuns.FirstOrDefault(r => r.Start <= _cursor && _cursor < r.Start + r.Length);
            if (atCursor.Length > 0 && atCursor.Start + atCursor.Length - _cursor >= count)
            {
                Assert.That(runs, Is.EqualTo(new[] { (_cursor, count) }), $"{operation} should continue at the cursor {_cursor}");
                return;
            }

            var fits = freeRuns.Where(r => r.Length >= count).ToList();
            if (fits.Count > 0)
            {
                var best = fits.OrderBy(r => r.Length).ThenBy(r => r.Start).First();
                Assert.That(runs, Is.EqualTo(new[] { (best.Start, count) }), $"{operation} should take the best fit");
                return;
            }

            var inOrder = freeRuns.Where(r => r.Start >= _cursor).Concat(freeRuns.Where(r => r.Start < _cursor)).ToList();
            for (int i = 0; i < runs.Count; i++)
            {
                var expected = i < runs.Count - 1 ? inOrder[i] : (inOrder[i].Start, count - runs.Take(i).Sum(r => r.Length));
                Assert.That(runs[i], Is.EqualTo(expected), $"{operation} piece {i} should follow address order from the cursor {_cursor}");
            }
        }

        private string FreeOwned()
        {
            if (_owned.Count == 0)
            {
                return "nothing to free";
            }

            int index = _random.Next(_owned.Count);
            var (start, length) = _owned[index];
            long from = start + _random.NextInt64(length);
            long to = from + 1 + _random.NextInt64(start + length - from);
            _owned.RemoveAt(index);
            AddOwned(start, from - start);
            AddOwned(to, start + length - to);

            _allocator.Free(from, to - from);

            for (long b = from; b < to; b++)
            {
                _free[b - First] = true;
            }

            return $"Free({from}, {to - from})";
        }

        private string MarkFreeAllocated()
        {
            var freeRuns = FreeRunsOfModel();
            if (freeRuns.Count == 0)
            {
                return "nothing to mark";
            }

            var (start, length) = freeRuns[_random.Next(freeRuns.Count)];
            long from = start + _random.NextInt64(length);
            long to = from + 1 + _random.NextInt64(start + length - from);

            _allocator.MarkAllocated(from, to - from);

            for (long b = from; b < to; b++)
            {
                _free[b - First] = false;
            }

            AddOwned(from, to - from);
            return $"MarkAllocated({from}, {to - from})";
        }

        private string DoubleFree()
        {
            var freeRuns = FreeRunsOfModel();
            if (freeRuns.Count == 0)
            {
                return "nothing free to free twice";
            }

            var (start, length) = freeRuns[_random.Next(freeRuns.Count)];
            long inside = start + _random.NextInt64(length);
            long from = Math.Max(First, inside - _random.Next(5));
            long to = Math.Min(First + regionBlocks, inside + 1 + _random.Next(5));
            Assert.That(() => _allocator.Free(from, to - from), Throws.InvalidOperationException, $"Free({from}, {to - from}) over free block {inside}");
            return $"double Free({from}, {to - from})";
        }

        private string MarkAllocatedOverAllocated()
        {
            var allocated = Enumerable.Range(0, regionBlocks).Where(i => !_free[i]).ToList();
            if (allocated.Count == 0)
            {
                return "nothing allocated";
            }

            long inside = First + allocated[_random.Next(allocated.Count)];
            long from = Math.Max(First, inside - _random.Next(5));
            long to = Math.Min(First + regionBlocks, inside + 1 + _random.Next(5));
            Assert.That(() => _allocator.MarkAllocated(from, to - from), Throws.InvalidOperationException, $"MarkAllocated({from}, {to - from}) over allocated block {inside}");
            return $"refused MarkAllocated({from}, {to - from})";
        }

        private string FreeOutsideRegion()
        {
            long start, length;
            if (_random.Next(2) == 0)
            {
                start = First - 1 - _random.Next(5);
                length = 1 + _random.Next(5);
            }
            else
            {
                int inside = _random.Next(3);
                start = First + regionBlocks - inside;
                length = inside + 1 + _random.Next(5);
            }

            Assert.That(() => _allocator.Free(start, length), Throws.InvalidOperationException, $"Free({start}, {length}) outside the region");
            return $"refused Free({start}, {length})";
        }

        private void AddOwned(long start, long length)
        {
            if (length > 0)
            {
                _owned.Add((start, length));
            }
        }

        private List<(long Start, long Length)> FreeRunsOfModel()
        {
            var runs = new List<(long Start, long Length)>();
            for (int i = 0; i < _free.Length; i++)
            {
                if (!_free[i])
                {
                    continue;
                }

                if (i > 0 && _free[i - 1])
                {
                    runs[^1] = (runs[^1].Start, runs[^1].Length + 1);
                }
                else
                {
                    runs.Add((First + i, 1));
                }
            }

            return runs;
        }
    }
}
