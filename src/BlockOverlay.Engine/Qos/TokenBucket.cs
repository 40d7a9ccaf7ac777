namespace BlockOverlay.Engine.Qos;

/// <summary>
/// A token bucket that may go into debt: it fills at <see cref="Rate"/> tokens a second up to
/// <see cref="Capacity"/>; a request takes its whole cost when it arrives and starts once the
/// debt before it is paid, so a request larger than the bucket (1 MiB under a 512 KiB/s limit)
/// still passes, and the debt makes the next ones wait until the average is kept.
/// Not thread-safe: <see cref="RequestPacer"/> holds its lock around it.
/// </summary>
internal sealed class TokenBucket
{
    private readonly TimeProvider _time;
    private double _tokens;
    private long _at;

    /// <param name="rate">Tokens a second, more than 0.</param>
    /// <param name="capacity">Most tokens kept: the burst admitted at once after a quiet spell.</param>
    /// <param name="tokens">Tokens to start with (0: no burst before the first refill).</param>
    public TokenBucket(double rate, double capacity, double tokens, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rate);
        (Rate, Capacity, _tokens, _time) = (rate, capacity, Math.Min(tokens, capacity), time);
        _at = time.GetTimestamp();
    }

    public double Rate { get; }

    public double Capacity { get; }

    /// <summary>
    /// Takes <paramref name="cost"/> tokens now, into debt if it must, and says how long the
    /// request waits: until the debt left by the requests before it is paid (zero: none is left).
    /// The wait is fixed when the request arrives, so a waiter woken late does not slow the
    /// ones after it: the schedule is the bucket's, not the timers'.
    /// </summary>
    public TimeSpan Reserve(double cost)
    {
        Refill();
        var wait = _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / Rate);
        _tokens -= cost;
        return wait;
    }

    private void Refill()
    {
        long now = _time.GetTimestamp();
        _tokens = Math.Min(Capacity, _tokens + _time.GetElapsedTime(_at, now).TotalSeconds * Rate);
        _at = now;
    }
}
