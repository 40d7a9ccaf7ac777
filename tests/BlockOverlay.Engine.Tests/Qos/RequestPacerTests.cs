using System.Diagnostics.Metrics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Qos;
using BlockOverlay.Store.Format;
using Microsoft.Extensions.Time.Testing;

namespace BlockOverlay.Engine.Tests.Qos;

/// <summary>
/// The token buckets' arithmetic against a clock the test moves: a closed-loop tenant gets its
/// limit (plus one burst) over a simulated span, large requests pass and pay with a wait, a
/// changed limit applies to the next admission and frees a waiter, and waiting is counted.
/// </summary>
public class RequestPacerTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(1);
    private static readonly Meter Meter = new("pacer-tests");
    private InstanceCounters _counters = null!;

    [SetUp]
    public void NewCounters() => _counters = new InstanceCounters("tenant", Meter.CreateHistogram<double>("flush"));

    private RequestPacer Pacer(Func<InstanceQos> settings, TimeProvider clock) => new(settings, _counters, clock);

    /// <summary>
    /// A tenant that always has its next request ready, as a connection's reader does: each
    /// request reserves its place when the one before it starts, and starts when its wait is over.
    /// Counts the starts within <paramref name="span"/>, seen at 1 ms steps (a late look costs nothing).
    /// </summary>
    private static (long Requests, long Bytes) Drive(RequestPacer pacer, FakeTimeProvider clock, TimeSpan span, long bytesEach)
    {
        long requests = 0;
        var due = clock.GetUtcNow() + pacer.Reserve(bytesEach);
        for (var end = clock.GetUtcNow() + span; clock.GetUtcNow() < end; clock.Advance(Step))
        {
            while (clock.GetUtcNow() >= due)
            {
                requests++;
                due = clock.GetUtcNow() + pacer.Reserve(bytesEach);
            }
        }

        return (requests, requests * bytesEach);
    }

    [Test]
    public void A_closed_loop_tenant_gets_its_request_rate_over_ten_seconds()
    {
        var clock = new FakeTimeProvider();
        var pacer = Pacer(() => new InstanceQos(200, 0), clock);
        var (requests, _) = Drive(pacer, clock, TimeSpan.FromSeconds(10), 4096);
        // 200/s for 10 s, plus at most one burst (100 ms: 20) and the request the debt rule lets in.
        Assert.That(requests, Is.InRange(2000, 2021));
    }

    [Test]
    public void Bytes_are_limited_and_a_request_larger_than_the_bucket_passes_then_waits()
    {
        var clock = new FakeTimeProvider();
        var pacer = Pacer(() => new InstanceQos(0, 512 * 1024), clock);
        Assert.That(pacer.Reserve(1 << 20), Is.EqualTo(TimeSpan.Zero), "a 1 MiB request under 512 KiB/s is not refused forever");
        var wait = pacer.Reserve(1 << 20);
        Assert.That(wait.TotalSeconds, Is.EqualTo(2).Within(0.01), "it is paid for: 1 MiB of debt at 512 KiB/s");

        clock.Advance(TimeSpan.FromSeconds(4));
        var (_, bytes) = Drive(pacer, clock, TimeSpan.FromSeconds(10), 64 * 1024);
        Assert.That(bytes, Is.InRange((10 * 512 * 1024) - (64 * 1024), (10 * 512 * 1024) + (64 * 1024)));
    }

    [Test]
    public void Both_limits_hold_together()
    {
        var clock = new FakeTimeProvider();
        var pacer = Pacer(() => new InstanceQos(1000, 1 << 20), clock);
        var (requests, bytes) = Drive(pacer, clock, TimeSpan.FromSeconds(5), 64 * 1024);
        Assert.That(bytes, Is.InRange(5L << 20, (5L << 20) + (256 * 1024)), "64 KiB requests meet the byte limit first");
        Assert.That(requests, Is.LessThan(100));
    }

    [Test]
    public void Without_limits_every_request_is_admitted_at_once()
    {
        var pacer = Pacer(() => InstanceQos.Default, new FakeTimeProvider());
        for (int i = 0; i < 10_000; i++)
        {
            Assert.That(pacer.AdmitAsync(1 << 20, CancellationToken.None).AsTask().IsCompletedSuccessfully, Is.True);
        }

        Assert.That(_counters.LimitWaits, Is.Zero);
    }

    [Test]
    public void A_changed_limit_applies_to_the_next_admission()
    {
        var clock = new FakeTimeProvider();
        var qos = new InstanceQos(100, 0);
        var pacer = Pacer(() => qos, clock);
        var (slow, _) = Drive(pacer, clock, TimeSpan.FromSeconds(5), 0);
        qos = new InstanceQos(400, 0);
        var (fast, _) = Drive(pacer, clock, TimeSpan.FromSeconds(5), 0);
        Assert.That(slow, Is.InRange(500, 511));
        Assert.That(fast, Is.InRange(2000, 2001), "the new bucket starts empty: a change admits no burst");
    }

    [Test]
    public async Task A_waiter_is_freed_when_its_limit_is_lifted_and_its_wait_is_counted()
    {
        var clock = new FakeTimeProvider();
        var qos = new InstanceQos(1, 0); // one request a second: the second waits a second
        var pacer = Pacer(() => qos, clock);
        Assert.That(pacer.AdmitAsync(0, CancellationToken.None).AsTask().IsCompleted, Is.True);
        var waiting = pacer.AdmitAsync(0, CancellationToken.None).AsTask();
        Assert.That(waiting.IsCompleted, Is.False);

        qos = InstanceQos.Default;
        clock.Advance(RequestPacer.LongestSleep);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(_counters.LimitWaits, Is.EqualTo(1));
        Assert.That(_counters.LimitWait, Is.EqualTo(RequestPacer.LongestSleep), "freed at its first look at the settings, not after a second");
    }

    [Test]
    public async Task A_waiter_ends_when_its_connection_does()
    {
        var clock = new FakeTimeProvider();
        var pacer = Pacer(() => new InstanceQos(1, 0), clock);
        await pacer.AdmitAsync(0, CancellationToken.None);
        using var ending = new CancellationTokenSource();
        var waiting = pacer.AdmitAsync(0, ending.Token).AsTask();
        await ending.CancelAsync();
        Assert.That(async () => await waiting, Throws.InstanceOf<OperationCanceledException>());
    }
}
