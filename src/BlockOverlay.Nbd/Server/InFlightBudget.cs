namespace BlockOverlay.Nbd.Server;

/// <summary>
/// A byte budget for the requests one connection holds at once, optionally inside a wider
/// budget (<paramref name="shared"/>): a connection's inside its client's, a client's inside
/// the server's. The request reader waits for room in each before taking a request;
/// completions give it back to each. When everything is given back the connection is idle,
/// which is what a disconnect (and the idle limit) waits for.
/// </summary>
/// <remarks>
/// Locking: one lock per budget guards its count and waiters; completions run outside it.
/// Room is taken from the narrowest budget first (the connection's, then the client's, then
/// the server's), so a request waiting for a wider budget holds only what is its own client's,
/// never the server's: the server's budget is held only by requests that are running or whose
/// replies are being written. Waiters are served first come, first served, so a request at the
/// head of the server's queue is served as soon as enough of what others hold is given back,
/// and what hostile clients hold is bounded in time (stall limits): nobody waits for ever.
/// <paramref name="waited"/> is told each time a take has to queue.
/// </remarks>
internal sealed class InFlightBudget(long capacity, InFlightBudget? shared = null, Action? waited = null)
{
    private readonly long _capacity = capacity;
    private readonly Lock _lock = new();
    private readonly Queue<(long Amount, TaskCompletionSource Waiter)> _waiters = new();
    private long _available = capacity;
    private long _idleSince = Environment.TickCount64;
    private TaskCompletionSource? _idle;

    /// <summary>Takes <paramref name="amount"/>, at most the capacity (the caller caps a request's cost, so any request fits alone).</summary>
    public ValueTask TakeAsync(long amount) => shared is null ? TakeOwnAsync(amount) : TakeBothAsync(amount);

    /// <summary>Gives back what <see cref="TakeAsync"/> took (one amount, or the sum of several).</summary>
    public void Return(long amount)
    {
        shared?.Return(amount);
        ReturnOwn(amount);
    }

    /// <summary>
    /// Since when (<see cref="Environment.TickCount64"/>, ms) nothing has been taken, or null
    /// while something is.
    /// </summary>
    public long? IdleSince()
    {
        lock (_lock)
        {
            return _available == _capacity ? _idleSince : null;
        }
    }

    private async ValueTask TakeBothAsync(long amount)
    {
        await TakeOwnAsync(amount);
        await shared!.TakeAsync(amount);
    }

    private ValueTask TakeOwnAsync(long amount)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(amount, _capacity);
        lock (_lock)
        {
            if (_waiters.Count == 0 && _available >= amount)
            {
                _available -= amount;
                return ValueTask.CompletedTask;
            }

            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Enqueue((amount, waiter));
            waited?.Invoke();
            return new ValueTask(waiter.Task);
        }
    }

    private void ReturnOwn(long amount)
    {
        List<TaskCompletionSource>? ready = null;
        TaskCompletionSource? idle = null;
        lock (_lock)
        {
            _available += amount;
            if (_available > _capacity)
            {
                throw new InvalidOperationException($"{_available - _capacity} bytes more given back than taken");
            }

            while (_waiters.TryPeek(out var next) && next.Amount <= _available)
            {
                _waiters.Dequeue();
                _available -= next.Amount;
                (ready ??= []).Add(next.Waiter);
            }

            if (_available == _capacity)
            {
                _idleSince = Environment.TickCount64;
                (idle, _idle) = (_idle, null);
            }
        }

        ready?.ForEach(w => w.SetResult());
        idle?.SetResult();
    }

    /// <summary>Completes when nothing is taken.</summary>
    public Task WhenIdleAsync()
    {
        lock (_lock)
        {
            if (_available == _capacity)
            {
                return Task.CompletedTask;
            }

            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _idle.Task;
        }
    }
}
