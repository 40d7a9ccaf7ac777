namespace BlockOverlay.Engine.Instances;

/// <summary>
/// An async lock on ranges of blocks: holders of overlapping ranges take turns, others run
/// at once. It makes a partial-block write's read-modify-write atomic against every other
/// write touching those blocks.
/// </summary>
/// <remarks>
/// Locking: one monitor guards the list of held ranges; waiters wait outside it for the
/// release of the range that blocked them, then look again. Few ranges are held at once
/// (one per request in flight), so a list is the right size of structure.
/// Allocation: a taken range is a <see cref="Held"/> reused from a free list, and its release
/// signal is made only when someone waits for it, so an uncontended write allocates nothing
/// here. A waiter keeps the signal, never the <see cref="Held"/>, which may be reused once released.
/// </remarks>
internal sealed class BlockRangeLock
{
    private readonly Lock _lock = new();
    private readonly List<Held> _held = [];
    private readonly Stack<Held> _free = [];

    /// <summary>Takes [first, last] (inclusive); dispose the result to release it (once).</summary>
    public async ValueTask<IDisposable> AcquireAsync(long first, long last)
    {
        while (true)
        {
            Task blocker;
            lock (_lock)
            {
                var overlapping = Overlapping(first, last);
                if (overlapping is null)
                {
                    return Take(first, last);
                }

                overlapping.Released ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                blocker = overlapping.Released.Task;
            }

            await blocker;
        }
    }

    /// <summary>Takes [first, last] if nobody holds any of it; else null, at once.</summary>
    public IDisposable? TryAcquire(long first, long last)
    {
        lock (_lock)
        {
            return Overlapping(first, last) is null ? Take(first, last) : null;
        }
    }

    /// <summary>Marks [first, last] held, which nobody holds. The caller holds the monitor.</summary>
    private Held Take(long first, long last)
    {
        var held = _free.TryPop(out var reused) ? reused : new Held(this);
        (held.First, held.Last) = (first, last);
        _held.Add(held);
        return held;
    }

    /// <summary>A held range overlapping [first, last], or null. The caller holds the monitor.</summary>
    private Held? Overlapping(long first, long last)
    {
        foreach (var held in _held)
        {
            if (held.First <= last && first <= held.Last)
            {
                return held;
            }
        }

        return null;
    }

    private void Release(Held held)
    {
        TaskCompletionSource? released;
        lock (_lock)
        {
            _held.Remove(held);
            (released, held.Released) = (held.Released, null);
            _free.Push(held);
        }

        released?.TrySetResult();
    }

    private sealed class Held(BlockRangeLock owner) : IDisposable
    {
        public long First { get; set; }

        public long Last { get; set; }

        /// <summary>Completed on release; made by the first waiter. Guarded by the owner's monitor.</summary>
        public TaskCompletionSource? Released { get; set; }

        public void Dispose() => owner.Release(this);
    }
}
