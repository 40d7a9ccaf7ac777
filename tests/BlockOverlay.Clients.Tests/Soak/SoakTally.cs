using System.Collections.Concurrent;

namespace BlockOverlay.Clients.Tests.Soak;

/// <summary>What a soak did and what went wrong, counted by every connection at once.</summary>
internal sealed class SoakTally
{
    private const int KeptMessages = 20;
    private readonly ConcurrentQueue<string> _problems = new();

    public Counter Connects { get; } = new();

    public Counter Writes { get; } = new();

    public Counter Reads { get; } = new();

    public Counter Flushes { get; } = new();

    public Counter Zeroes { get; } = new();

    public Counter BytesWritten { get; } = new();

    public Counter Churns { get; } = new();

    public Counter Errors { get; } = new();

    public Counter Mismatches { get; } = new();

    public Counter Leaks { get; } = new();

    public long Operations => Writes.Value + Reads.Value + Flushes.Value + Zeroes.Value;

    /// <summary>The first problems, in words (the counts hold them all).</summary>
    public IReadOnlyCollection<string> Problems => _problems;

    public void Error(string message)
    {
        Errors.Add(1);
        Keep(message);
    }

    public void Mismatch(string message, bool leak)
    {
        Mismatches.Add(1);
        if (leak)
        {
            Leaks.Add(1);
        }

        Keep((leak ? "another tenant's data: " : "") + message);
    }

    private void Keep(string message)
    {
        if (_problems.Count < KeptMessages)
        {
            _problems.Enqueue(message);
        }
    }

    internal sealed class Counter
    {
        private long _value;

        public long Value => Interlocked.Read(ref _value);

        public void Add(long amount) => Interlocked.Add(ref _value, amount);
    }
}
