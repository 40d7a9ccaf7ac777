namespace BlockOverlay.Nbd.Server;

/// <summary>
/// A byte budget for the requests one connection holds at once. The request reader
/// waits for room before taking a request; completions give it back. When everything
/// is given back the connection is idle, which is what a disconnect waits for.
/// </summary>
/// <remarks>Locking: one lock guards the count and the waiters; completions run outside it.</remarks>
internal sealed class InFlightBudget(long capacity)
{
    private readonly long _capacity = capacity;
    private readonly Lock _lock = new();
    private readonly Queue<(long Amount, TaskCompletionSource Waiter)> _waiters = new();
    private long _available = capacity;
    private TaskCompletionSource? _idle;

    /// <summary>Takes <paramref name="amount"/>, at most the capacity (the caller caps a request's cost, so any request fits alone).</summary>
    public ValueTask TakeAsync(long amount)
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
            return new ValueTask(waiter.Task);
        }
    }

    /// <summary>Gives back what <see cref="TakeAsync"/> took (one amount, or the sum of several).</summary>
    public void Return(long amount)
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
