using BlockOverlay.Engine.Cache;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Qos;

/// <summary>
/// Holds an instance's requests to its IOPS and byte limits (<see cref="InstanceQos"/>), shared
/// by all its connections: one bucket for requests, one for bytes; a request takes its cost from
/// both when it arrives and waits until the debt before it is paid in both (<see cref="TokenBucket"/>). The connection's reader awaits it before
/// reading the request's payload (docs/DESIGN.md, "Limits and weights").
/// </summary>
/// <remarks>
/// <para>
/// <b>Settings</b> are read at every admission, so <c>instance set</c> reaches open connections:
/// a changed limit replaces the buckets (starting empty, so a change never admits a burst), and
/// a waiter looks again at least every <see cref="LongestSleep"/> and, if they changed, waits
/// under the new ones instead, so a raised or removed limit frees it within that. With no limit an admission costs one read of the settings.
/// </para>
/// <para>
/// <b>Burst.</b> A bucket holds <see cref="Burst"/> of its rate (at least one request), as qemu's
/// throttling does by default: after a quiet spell a tenant gets that much at once, and over any
/// longer span the rate holds.
/// </para>
/// <para><b>Locking.</b> One lock around the buckets; never held while waiting.</para>
/// </remarks>
public sealed class RequestPacer
{
    /// <summary>What a bucket holds, in time at its rate.</summary>
    public static readonly TimeSpan Burst = TimeSpan.FromMilliseconds(100);

    /// <summary>Longest a waiter sleeps before it reads the settings again.</summary>
    public static readonly TimeSpan LongestSleep = TimeSpan.FromMilliseconds(100);

    private readonly Func<InstanceQos> _settings;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private InstanceQos _applied = InstanceQos.Default;
    private TokenBucket? _requests, _bytes;

    private readonly InstanceCounters _counters;

    /// <param name="settings">The instance's settings now (read at every admission).</param>
    /// <param name="counters">Where the time requests waited is counted.</param>
    public RequestPacer(Func<InstanceQos> settings, InstanceCounters counters, TimeProvider time)
    {
        _settings = settings ?? throw new ArgumentNullException(nameof(settings));
        _counters = counters ?? throw new ArgumentNullException(nameof(counters));
        _time = time ?? throw new ArgumentNullException(nameof(time));
    }

    /// <summary>Completes when a request moving <paramref name="bytes"/> may start (see <see cref="BlockOverlay.Exports.IPacedExport"/>).</summary>
    public ValueTask AdmitAsync(long bytes, CancellationToken cancel)
    {
        var qos = _settings();
        if (IsUnlimited(qos))
        {
            return ValueTask.CompletedTask;
        }

        long arrived = _time.GetTimestamp();
        var wait = Reserve(qos, bytes);
        return wait == TimeSpan.Zero ? ValueTask.CompletedTask : WaitAsync(bytes, qos, arrived, wait, cancel);
    }

    /// <summary>Reserves the request's place under the settings now; says how long it waits for it (zero: none).</summary>
    internal TimeSpan Reserve(long bytes)
    {
        var qos = _settings();
        return IsUnlimited(qos) ? TimeSpan.Zero : Reserve(qos, bytes);
    }

    private static bool IsUnlimited(InstanceQos qos) => qos.IopsLimit == 0 && qos.BpsLimit == 0;

    private TimeSpan Reserve(InstanceQos qos, long bytes)
    {
        lock (_lock)
        {
            if (!qos.Equals(_applied))
            {
                _applied = qos;
                _requests = qos.IopsLimit == 0 ? null : new TokenBucket(qos.IopsLimit, Math.Max(1, qos.IopsLimit * Burst.TotalSeconds), 0, _time);
                _bytes = qos.BpsLimit == 0 ? null : new TokenBucket(qos.BpsLimit, qos.BpsLimit * Burst.TotalSeconds, 0, _time);
            }

            var requests = _requests?.Reserve(1) ?? TimeSpan.Zero;
            var data = _bytes?.Reserve(bytes) ?? TimeSpan.Zero;
            return requests > data ? requests : data;
        }
    }

    /// <summary>
    /// Sleeps until the reserved start, in whole milliseconds (a timer rounds shorter sleeps to
    /// nothing, which would spin), looking at the settings at least every <see cref="LongestSleep"/>:
    /// changed, the request waits under the new ones instead (none: not at all).
    /// </summary>
    private async ValueTask WaitAsync(long bytes, InstanceQos reservedUnder, long arrived, TimeSpan wait, CancellationToken cancel)
    {
        long from = arrived;
        try
        {
            for (var left = wait; left > TimeSpan.Zero; left = wait - _time.GetElapsedTime(from))
            {
                var sleep = left < LongestSleep ? left : LongestSleep;
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(sleep.TotalMilliseconds)), _time, cancel);
                var qos = _settings();
                if (!qos.Equals(reservedUnder))
                {
                    if (IsUnlimited(qos))
                    {
                        return;
                    }

                    (reservedUnder, from) = (qos, _time.GetTimestamp());
                    wait = Reserve(qos, bytes);
                }
            }
        }
        finally
        {
            _counters.AddLimitWait(_time.GetElapsedTime(arrived));
        }
    }
}
