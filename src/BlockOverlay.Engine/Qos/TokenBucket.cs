namespace BlockOverlay.Engine.Qos;

/// <summary>
/// A token bucket that may go into debt: it fills at <see cref="Rate"/> tokens a second up to
/// <see cref="Capacity"/>, a request is admitted whenever the bucket is not in debt and then
/// takes its whole cost, so a request larger than the bucket (1 MiB under a 512 KiB/s limit)
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

    /// <summary>How long until the bucket is out of debt (zero: it is not in debt now).</summary>
    public TimeSpan UntilClear
    {
        get
        {
            Refill();
            return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Max(-_tokens / Rate, 1e-6));
        }
    }

    /// <summary>Takes <paramref name="cost"/> tokens, into debt if it must.</summary>
    public void Take(double cost) => _tokens -= cost;

    private void Refill()
    {
        long now = _time.GetTimestamp();
        _tokens = Math.Min(Capacity, _tokens + _time.GetElapsedTime(_at, now).TotalSeconds * Rate);
        _at = now;
    }
}
