using Microsoft.Extensions.Logging;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>
/// The NBD targets' oracle: the server logs a bug (an exception it did not expect) at Error or
/// above, and a protocol violation as event 105. Thread-safe: replies are written on other threads.
/// </summary>
internal sealed class BugLog : ILogger
{
    private const int ProtocolViolationEvent = 105;
    private readonly Lock _lock = new();
    private readonly List<string> _bugs = [];
    private int _violations;

    public int ProtocolViolations => Volatile.Read(ref _violations);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (eventId.Id == ProtocolViolationEvent)
        {
            Interlocked.Increment(ref _violations);
        }

        if (logLevel >= LogLevel.Error)
        {
            lock (_lock)
            {
                _bugs.Add($"{formatter(state, exception)}: {exception}");
            }
        }
    }

    public void ThrowIfBug()
    {
        lock (_lock)
        {
            if (_bugs.Count > 0)
            {
                throw new FuzzBugException(string.Join(Environment.NewLine, _bugs));
            }
        }
    }
}

/// <summary>A harness found what its oracle forbids: a bug of the code under test.</summary>
internal sealed class FuzzBugException(string message) : Exception(message);
