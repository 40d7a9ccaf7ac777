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
/// </remarks>
internal sealed class BlockRangeLock
{
    private readonly Lock _lock = new();
    private readonly List<Held> _held = [];

    /// <summary>Takes [first, last] (inclusive); dispose the result to release it.</summary>
    public async ValueTask<IDisposable> AcquireAsync(long first, long last)
    {
        while (true)
        {
            Task blocker;
            lock (_lock)
            {
                var overlapping = _held.Find(h => h.First <= last && first <= h.Last);
                if (overlapping is null)
                {
                    var held = new Held(this, first, last);
                    _held.Add(held);
                    return held;
                }

                blocker = overlapping.Released.Task;
            }

            await blocker;
        }
    }

    private void Release(Held held)
    {
        lock (_lock)
        {
            _held.Remove(held);
        }

        held.Released.TrySetResult();
    }

    private sealed class Held(BlockRangeLock owner, long first, long last) : IDisposable
    {
        public long First { get; } = first;

        public long Last { get; } = last;

        public TaskCompletionSource Released { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Dispose() => owner.Release(this);
    }
}
