using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// How often lines a client can provoke may be logged: per connection, a refused option or a
/// refused or failed request; per server, a refused connection. A burst, then one per
/// interval (a token bucket). What it leaves out is counted and told with the next line it
/// lets through and at the end, so a client that sends nothing but bad input costs the log a
/// few lines, not gigabytes. Bugs are not throttled.
/// </summary>
/// <remarks>Locking: one lock; requests of a connection complete on several threads.</remarks>
internal sealed class LogThrottle(Action<long> tellLeftOut, int burst, TimeSpan interval)
{
    private readonly Lock _lock = new();
    private readonly double _ticksPerToken = interval.TotalSeconds * Stopwatch.Frequency;
    private double _tokens = burst;
    private long _refilled = Stopwatch.GetTimestamp();
    private long _leftOut;

    /// <summary>Ten lines, then one a second.</summary>
    public static LogThrottle PerConnection(ILogger logger, long connectionId) =>
        new(count => logger.LinesNotLogged(connectionId, count), 10, TimeSpan.FromSeconds(1));

    /// <summary>For the server's refusals of connections: ten lines, then one a second.</summary>
    public static LogThrottle ForRefusals(ILogger logger) =>
        new(logger.RefusalsNotLogged, 10, TimeSpan.FromSeconds(1));

    /// <summary>Whether a line may be logged now (if not, it is counted as left out).</summary>
    public bool MayLog()
    {
        long leftOut;
        lock (_lock)
        {
            long now = Stopwatch.GetTimestamp();
            _tokens = Math.Min(burst, _tokens + ((now - _refilled) / _ticksPerToken));
            _refilled = now;
            if (_tokens < 1)
            {
                _leftOut++;
                return false;
            }

            _tokens--;
            (leftOut, _leftOut) = (_leftOut, 0);
        }

        TellLeftOut(leftOut);
        return true;
    }

    /// <summary>Tells what was left out and not yet told (when the connection ends).</summary>
    public void Flush()
    {
        long leftOut;
        lock (_lock)
        {
            (leftOut, _leftOut) = (_leftOut, 0);
        }

        TellLeftOut(leftOut);
    }

    private void TellLeftOut(long leftOut)
    {
        if (leftOut > 0)
        {
            tellLeftOut(leftOut);
        }
    }
}
