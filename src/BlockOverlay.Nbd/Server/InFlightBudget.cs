namespace BlockOverlay.Nbd.Server;

/// <summary>
/// A byte budget for the requests one connection holds at once, optionally inside a budget
/// shared by all the connections of one client (<paramref name="shared"/>). The request reader
/// waits for room in both before taking a request; completions give it back to both. When
/// everything is given back the connection is idle, which is what a disconnect waits for.
/// </summary>
/// <remarks>
/// Locking: one lock guards the count and the waiters; completions run outside it. Room is
/// taken from the shared budget first, then from the connection's, and given back in reverse.
/// </remarks>
internal sealed class InFlightBudget(long capacity, InFlightBudget? shared = null)
{
    private readonly long _capacity = capacity;
    private readonly Lock _lock = new();
    private readonly Queue<(long Amount, TaskCompletionSource Waiter)> _waiters = new();
    private long _available = capacity;
    private TaskCompletionSource? _idle;

    /// <summary>Takes <paramref name="amount"/>, at most the capacity (the caller caps a request's cost, so any request fits alone).</summary>
    public ValueTask TakeAsync(long amount) => shared is null ? TakeOwnAsync(amount) : TakeBothAsync(amount);

    /// <summary>Gives back what <see cref="TakeAsync"/> took (one amount, or the sum of several).</summary>
    public void Return(long amount)
    {
        ReturnOwn(amount);
        shared?.Return(amount);
    }

    private async ValueTask TakeBothAsync(long amount)
    {
        await shared!.TakeAsync(amount);
        await TakeOwnAsync(amount);
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
