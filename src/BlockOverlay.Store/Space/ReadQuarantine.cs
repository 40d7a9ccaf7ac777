namespace BlockOverlay.Store.Space;

/// <summary>
/// Read tickets and the quarantine of freed blocks: a block a read found in a map is not
/// reused (by this instance or another) under that read.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> Reads in flight, each with a ticket (ascending); freed runs waiting, each
/// tagged with the last ticket handed out when it was freed.
/// </para>
/// <para>
/// <b>Invariants.</b> A freed run waits until every read that started before the free has
/// finished: any of them may have found it in a map. A read therefore returns its instance's
/// old or new data, never another instance's. (Comparing block numbers after the read would
/// not do: a block can be freed, reused and mapped back.)
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> guards tickets and the queue, for memory work only; it is released
/// before <see cref="StoreSpace"/>'s lock is taken.
/// </para>
/// <para><b>Durability.</b> Memory only: after a crash no read is in flight.</para>
/// </remarks>
internal sealed class ReadQuarantine(StoreSpace space)
{
    private readonly Lock _lock = new();
    private readonly SortedSet<long> _readsInFlight = [];
    private readonly Queue<(long Ticket, List<(long Start, long Length)> Runs)> _quarantine = new();
    private long _lastTicket;

    /// <summary>A read starts: its ticket, for <see cref="EndRead"/>.</summary>
    public long BeginRead()
    {
        lock (_lock)
        {
            long ticket = ++_lastTicket;
            _readsInFlight.Add(ticket);
            return ticket;
        }
    }

    /// <summary>Ends a read; blocks freed before every read still in flight started are released.</summary>
    public void EndRead(long ticket)
    {
        List<(long, long)>? released = null;
        lock (_lock)
        {
            _readsInFlight.Remove(ticket);
            long oldest = _readsInFlight.Count == 0 ? long.MaxValue : _readsInFlight.Min;
            while (_quarantine.TryPeek(out var held) && held.Ticket < oldest)
            {
                (released ??= []).AddRange(_quarantine.Dequeue().Runs);
            }
        }

        if (released is not null)
        {
            space.Free(released);
        }
    }

    /// <summary>
    /// Frees blocks, through the quarantine: while reads that started before now are still in
    /// flight (any of them may have found these blocks in a map), the blocks wait.
    /// </summary>
    public void Free(IEnumerable<(long Start, long Length)> runs)
    {
        var list = runs.ToList();
        if (list.Count == 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_readsInFlight.Count > 0)
            {
                _quarantine.Enqueue((_lastTicket, list));
                return;
            }
        }

        space.Free(list);
    }
}
