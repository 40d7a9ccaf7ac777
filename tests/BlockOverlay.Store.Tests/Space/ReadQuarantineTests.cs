using System.Collections.Concurrent;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Tests.Space;

/// <summary>
/// The quarantine's one promise: a freed run goes back to free space only after every read
/// that started before the free has ended, and then it does go back (nothing waits for ever).
/// </summary>
public class ReadQuarantineTests
{
    private List<(long Start, long Length)> _released = [];
    private ReadQuarantine _quarantine = null!;

    [SetUp]
    public void Fresh()
    {
        var released = new List<(long Start, long Length)>();
        _released = released;
        _quarantine = new ReadQuarantine(released.AddRange);
    }

    [Test]
    public void A_free_with_no_read_in_flight_is_released_at_once()
    {
        _quarantine.Free([(10, 2)]);
        Assert.That(_released, Is.EqualTo(new[] { (10L, 2L) }));
    }

    [Test]
    public void A_free_waits_for_the_read_that_started_before_it()
    {
        long read = _quarantine.BeginRead();
        _quarantine.Free([(10, 2)]);
        Assert.That(_released, Is.Empty, "released under a read that may have found it");
        _quarantine.EndRead(read);
        Assert.That(_released, Is.EqualTo(new[] { (10L, 2L) }));
    }

    [Test]
    public void A_read_that_starts_after_the_free_does_not_hold_it()
    {
        long before = _quarantine.BeginRead();
        _quarantine.Free([(10, 2)]);
        long after = _quarantine.BeginRead();
        _quarantine.EndRead(before);
        Assert.That(_released, Is.EqualTo(new[] { (10L, 2L) }), "held by a read that could not have found it");
        _quarantine.EndRead(after);
    }

    [Test]
    public void Frees_made_while_one_waits_are_held_by_the_reads_of_their_own_time()
    {
        long first = _quarantine.BeginRead();
        _quarantine.Free([(10, 1)]);          // waits for first
        long second = _quarantine.BeginRead();
        _quarantine.Free([(20, 1)]);          // waits for first and second
        _quarantine.EndRead(first);
        Assert.That(_released, Is.EqualTo(new[] { (10L, 1L) }));
        long third = _quarantine.BeginRead(); // after both frees: holds neither
        _quarantine.EndRead(second);
        Assert.That(_released, Is.EqualTo(new[] { (10L, 1L), (20L, 1L) }));
        _quarantine.EndRead(third);
    }

    /// <summary>
    /// Readers, freers and the releases they cause on several threads, against a model: each
    /// read notes when it began (after BeginRead) and leaves the model before EndRead; each run
    /// notes when it was freed (before Free). A run released while a read that began before its
    /// free is still in the model was released under that read.
    /// </summary>
    [TestCase(1)]
    [TestCase(2)]
    public void Concurrent_reads_and_frees_never_release_under_an_earlier_read(int seed)
    {
        long clock = 0, nextRun = 0, reads = 0;
        var active = new ConcurrentDictionary<long, long>();      // read id -> began at
        var freedAt = new ConcurrentDictionary<long, long>();     // run start -> freed at
        var released = new ConcurrentDictionary<long, bool>();
        string? violation = null;
        var quarantine = new ReadQuarantine(runs =>
        {
            foreach (var (start, _) in runs)
            {
                long freed = freedAt[start];
                foreach (var (id, began) in active)
                {
                    if (began < freed)
                    {
                        violation ??= $"run {start} (freed at {freed}) released while read {id} (began at {began}) was in flight";
                    }
                }

                released[start] = true;
            }
        });
        // Dedicated threads, started together: on the thread pool these busy loops took both
        // of a 2-core machine's workers and the readers never started (0 reads) in CI.
        using var stop = new CancellationTokenSource();
        using var start = new Barrier(6, _ => stop.CancelAfter(TimeSpan.FromMilliseconds(600)));

        void Reader(int id)
        {
            var rng = new Random(seed * 100 + id);
            start.SignalAndWait();
            while (!stop.IsCancellationRequested)
            {
                long ticket = quarantine.BeginRead();
                long readId = Interlocked.Increment(ref reads);
                active[readId] = Interlocked.Increment(ref clock);
                Thread.SpinWait(rng.Next(200));
                if (rng.Next(8) == 0)
                {
                    Thread.Yield();
                }

                active.TryRemove(readId, out _);
                quarantine.EndRead(ticket);
            }
        }

        void Freer()
        {
            start.SignalAndWait();
            while (!stop.IsCancellationRequested)
            {
                long start = Interlocked.Increment(ref nextRun);
                freedAt[start] = Interlocked.Increment(ref clock);
                quarantine.Free([(start, 1)]);
                Thread.SpinWait(50);
            }
        }

        var threads = Enumerable.Range(0, 4).Select(i => new Thread(() => Reader(i)))
            .Append(new Thread(Freer)).Append(new Thread(Freer)).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        Assert.That(violation, Is.Null);
        Assert.That(reads, Is.GreaterThan(1000), "the race needs reads");
        Assert.That(released.Count, Is.EqualTo(freedAt.Count), "with no read in flight every freed run is back in free space");
    }
}
