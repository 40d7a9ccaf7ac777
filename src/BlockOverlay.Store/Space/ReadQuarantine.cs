namespace BlockOverlay.Store.Space;

/// <summary>
/// Read tickets and the quarantine of freed blocks: a block a read found in a map is not
/// reused (by this instance or another) under that read. Reads take no lock and allocate nothing.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> An epoch number; its parity (even or odd) names one of two reader counts, each
/// striped over a few padded counters so that reads on different cores do not share a cache
/// line. Freed runs wait in <c>_next</c> (freed since the last grace period began) or in
/// <c>_retiring</c> (the grace period in progress, if any, releases them when it ends).
/// </para>
/// <para>
/// <b>Grace periods</b> (the idea of RCU and of Garnet's epochs, in two generations). A read counts
/// itself in the current epoch's parity. Starting a grace period moves <c>_next</c> to
/// <c>_retiring</c> and advances the epoch, so later reads count in the other parity; the period
/// ends when the old parity's count is zero: every read that started before those blocks were
/// freed has ended. Then <c>_retiring</c> goes back to free space and, if more frees waited, the
/// next period starts. Only one period runs at a time, so a parity is never reused before it drained.
/// </para>
/// <para>
/// <b>Invariants.</b> A freed run is released only after every read that started before the free
/// has finished: any of them may have found it in a map (the maps no longer name a run when it
/// is freed, so a read that starts later cannot find it). A read therefore returns its instance's
/// old or new data, never another instance's. (Comparing block numbers after the read would not
/// do: a block can be freed, reused and mapped back.)
/// </para>
/// <para>
/// <b>The race at a read's start.</b> A read increments its parity's count, then checks that the
/// epoch is still the one it read; if a grace period started in between, it takes its count
/// back (which may end that period) and starts over in the new epoch. Both sides use full
/// fences (an interlocked increment then a read; an interlocked epoch change then a read of the
/// counts), so either the grace period sees the read's count or the read sees the new epoch: a
/// period never ends under a read that began before it and looked anything up.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> guards the two waiting lists and the start and end of grace
/// periods: taken by frees, and by a read's end only when it may have ended a period. Released
/// before the release callback (free space's own lock) runs.
/// </para>
/// <para><b>Durability.</b> Memory only: after a crash no read is in flight.</para>
/// </remarks>
internal sealed class ReadQuarantine
{
    /// <summary>Counters per parity: a power of two near the core count (tickets carry the stripe).</summary>
    private readonly int _stripes = (int)Math.Min(64, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Environment.ProcessorCount));

    /// <summary>[parity * _stripes + stripe], each counter alone on a 128-byte line.</summary>
    private readonly PaddedCount[] _readers;
    private readonly Action<List<(long Start, long Length)>> _release;
    private readonly Lock _lock = new();
    private List<(long Start, long Length)> _next = [];
    private List<(long Start, long Length)>? _retiring;
    private long _epoch;

    /// <param name="release">Gives runs back to free space (never called under this class's lock).</param>
    public ReadQuarantine(Action<List<(long Start, long Length)>> release)
    {
        _release = release;
        _readers = new PaddedCount[2 * _stripes];
    }

    /// <summary>A read starts: its ticket, for <see cref="EndRead"/>.</summary>
    public long BeginRead()
    {
        int stripe = Environment.CurrentManagedThreadId & (_stripes - 1);
        while (true)
        {
            long epoch = Volatile.Read(ref _epoch);
            int slot = ((int)(epoch & 1) * _stripes) + stripe;
            Interlocked.Increment(ref _readers[slot].Value);
            if (Volatile.Read(ref _epoch) == epoch)
            {
                return slot;
            }

            Leave(slot); // a grace period started in between: count in the new epoch instead
        }
    }

    /// <summary>Ends a read; a grace period it was the last read of ends with it.</summary>
    public void EndRead(long ticket) => Leave((int)ticket);

    /// <summary>
    /// Frees blocks, through the quarantine: while reads that started before now are still in
    /// flight (any of them may have found these blocks in a map), the blocks wait.
    /// </summary>
    public void Free(IEnumerable<(long Start, long Length)> runs)
    {
        bool any = false;
        lock (_lock)
        {
            foreach (var run in runs)
            {
                _next.Add(run);
                any = true;
            }

            if (!any || _retiring is not null)
            {
                return; // the period in progress starts the next one when it ends
            }
        }

        ReleaseWhileDrained(StartGracePeriod());
    }

    private void Leave(int slot)
    {
        if (Interlocked.Decrement(ref _readers[slot].Value) == 0 && Volatile.Read(ref _retiring) is not null)
        {
            ReleaseWhileDrained(RetiringParityIfDrained());
        }
    }

    /// <summary>Under no lock: ends grace periods whose old readers are gone, and starts the next.</summary>
    private void ReleaseWhileDrained(int? parity)
    {
        while (parity is { } p)
        {
            List<(long Start, long Length)> released;
            lock (_lock)
            {
                if (_retiring is null || (int)(Volatile.Read(ref _epoch) & 1) == p || Count(p) != 0)
                {
                    return; // someone else ended it, or a read still holds it
                }

                released = _retiring;
                _retiring = null;
            }

            _release(released);
            parity = StartGracePeriod();
        }
    }

    /// <summary>Starts a period for the runs waiting, if any and none runs: the parity it waits for.</summary>
    private int? StartGracePeriod()
    {
        lock (_lock)
        {
            if (_retiring is not null || _next.Count == 0)
            {
                return null;
            }

            (_retiring, _next) = (_next, []);
            long old = Interlocked.Increment(ref _epoch) - 1;
            return (int)(old & 1);
        }
    }

    /// <summary>The parity the period in progress waits for, if its count is already zero.</summary>
    private int? RetiringParityIfDrained()
    {
        int parity = (int)((Volatile.Read(ref _epoch) - 1) & 1);
        return Count(parity) == 0 ? parity : null;
    }

    private long Count(int parity)
    {
        long sum = 0;
        for (int i = 0; i < _stripes; i++)
        {
            sum += Volatile.Read(ref _readers[(parity * _stripes) + i].Value);
        }

        return sum;
    }

    /// <summary>One reader count on a cache line of its own (128 bytes: adjacent-line prefetch too).</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
    private struct PaddedCount
    {
        [System.Runtime.InteropServices.FieldOffset(0)]
        public long Value;
    }
}
