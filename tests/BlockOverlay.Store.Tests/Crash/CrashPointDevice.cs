using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>How the write in flight at a power cut ends up on the media.</summary>
internal enum InFlightFate
{
    /// <summary>None of it: the power failed just before it.</summary>
    Lost,

    /// <summary>All of it: the power failed just after it, before the next.</summary>
    Whole,

    /// <summary>A random subset of its 512-byte sectors (each sector is atomic).</summary>
    Torn,
}

/// <summary>One crash image and what was going on when it was taken.</summary>
internal sealed record CrashPoint(
    MemoryDevice Image,
    long WriteIndex,
    long Offset,
    int Length,
    InFlightFate Fate,
    Dictionary<string, InstanceModel> Model,
    (StepKind Kind, string? Name)? InProgress,
    string Context)
{
    public string Describe() =>
        $"power cut at device write {WriteIndex} ({Length} bytes at block {Offset / CrashTestKit.Block}, fate {Fate}) " +
        $"during {(InProgress is { } p ? $"{p.Kind} {p.Name}" : "nothing")}; {Context}";
}

/// <summary>
/// A decorator over a <see cref="PowerLossDevice"/> that, when armed, takes a crash image at
/// every write: <see cref="PowerLossDevice.Crash"/> (the media if the power failed now), plus
/// the write being issued lost, whole or torn at sector granularity — a power cut while that
/// write is in flight. The write then proceeds normally, so one run of a workload yields a
/// crash image for every write it makes.
/// </summary>
internal sealed class CrashPointDevice(PowerLossDevice inner, Random rng, Action<MemoryDevice, long, long, int, InFlightFate> onCrashImage)
    : IBlockDevice
{
    // Writes go through one at a time, so an image and the callback's view of the workload
    // (taken inside it) agree even when several threads write: nothing lands in between.
    private readonly Lock _gate = new();

    public long Size => inner.Size;

    /// <summary>Writes seen so far (armed or not).</summary>
    public long Writes { get; private set; }

    public bool Armed { get; set; }

    /// <summary>
    /// Let other threads run before some reads and writes (concurrent runs): the store's awaits
    /// then really suspend, so other workers get in between its steps, as with a real device.
    /// </summary>
    public bool YieldSometimes { get; init; }

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        if (YieldSometimes && Random.Shared.Next(4) == 0)
        {
            await Task.Yield();
        }

        await inner.ReadAsync(offset, buffer);
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        if (YieldSometimes && Random.Shared.Next(2) == 0)
        {
            await Task.Yield();
        }

        await WriteNowAsync(offset, data, durable);
    }

    private ValueTask WriteNowAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        lock (_gate)
        {
            long index = Writes++;
            if (Armed)
            {
                var image = inner.Crash(rng);
                var fate = (InFlightFate)rng.Next(3);
                if (fate == InFlightFate.Whole)
                {
                    image.WriteUnaligned(offset, data.Span);
                }
                else if (fate == InFlightFate.Torn)
                {
                    for (int s = 0; s < data.Length; s += PowerLossDevice.SectorSize)
                    {
                        if (rng.Next(2) == 1)
                        {
                            image.WriteUnaligned(offset + s, data.Span.Slice(s, PowerLossDevice.SectorSize));
                        }
                    }
                }

                onCrashImage(image, index, offset, data.Length, fate);
            }

            // The power-loss device completes every call before returning.
            return inner.WriteAsync(offset, data, durable);
        }
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>A crash image of a concurrent run, with every worker's state when it was taken.</summary>
internal sealed record ConcurrentCrashPoint(
    MemoryDevice Image,
    int Seed,
    long WriteIndex,
    long Offset,
    int Length,
    InFlightFate Fate,
    SlotSnapshot[] Slots)
{
    public string Describe() =>
        $"power cut at device write {WriteIndex} ({Length} bytes at block {Offset / CrashTestKit.Block}, fate {Fate}); " +
        $"concurrent seed {Seed}; workers: " +
        string.Join(", ", Slots.Select(s => $"{s.Name} (id {s.Model?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}) " +
                                            $"{(s.InProgress is { } k ? $"in {k}" : "idle")}"));
}

/// <summary>
/// A device that can hold one chosen write until the test lets it go: to stop another thread
/// in the middle of a store operation at an exact point, and look at the media then.
/// </summary>
internal sealed class PausingDevice(IBlockDevice inner) : IBlockDevice
{
    private readonly Lock _lock = new();
    private Pause? _next;

    public long Size => inner.Size;

    /// <summary>The next write overlapping [start, end) waits for <see cref="Pause.Release"/>.</summary>
    public Pause PauseNextWrite(long start, long end)
    {
        var pause = new Pause(start, end);
        lock (_lock)
        {
            _next = pause;
        }

        return pause;
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        Pause? pause = null;
        lock (_lock)
        {
            if (_next is { } next && offset < next.End && offset + data.Length > next.Start)
            {
                (pause, _next) = (next, null);
            }
        }

        if (pause is not null)
        {
            pause.Arrive();
            await pause.Released;
        }

        await inner.WriteAsync(offset, data, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    public sealed class Pause(long start, long end)
    {
        private readonly TaskCompletionSource _arrived = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long Start { get; } = start;

        public long End { get; } = end;

        /// <summary>Completes when the held write has been issued (and is waiting).</summary>
        public Task Arrived => _arrived.Task;

        internal Task Released => _released.Task;

        public void Release() => _released.TrySetResult();

        internal void Arrive() => _arrived.TrySetResult();
    }
}
