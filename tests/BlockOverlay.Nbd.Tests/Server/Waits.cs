namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>Bounded waits on a server's state, for tests that watch it settle.</summary>
internal static class Waits
{
    /// <summary>The value once it stops changing (unchanged for half a second; at most 15 s).</summary>
    public static async Task<long> SettledAsync(Func<long> read)
    {
        long last = read();
        for (var deadline = DateTime.UtcNow.AddSeconds(15); DateTime.UtcNow < deadline;)
        {
            await Task.Delay(500);
            long now = read();
            if (now == last)
            {
                return now;
            }

            last = now;
        }

        return last;
    }

    /// <summary>Whether the condition holds within 10 s.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition)
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(10); !condition(); await Task.Delay(50))
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }
        }

        return true;
    }
}
