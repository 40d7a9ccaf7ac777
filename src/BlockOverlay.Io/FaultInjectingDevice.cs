using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>The kinds of call a fault rule can match.</summary>
public enum DeviceOperation
{
    /// <summary><see cref="IBlockDevice.ReadAsync"/>.</summary>
    Read,

    /// <summary><see cref="IBlockDevice.WriteAsync"/>, durable or not.</summary>
    Write,

    /// <summary><see cref="IBlockDevice.FlushAsync"/>.</summary>
    Flush,
}

/// <summary>The error an injected fault raises; the value is the errno put in <see cref="Exception.HResult"/>.</summary>
public enum InjectedError
{
    /// <summary>EIO: the media failed.</summary>
    IoError = Errno.EIO,

    /// <summary>ENOSPC: a thin-provisioned device or a full file system under the store file.</summary>
    NoSpace = Errno.ENOSPC,
}

/// <summary>
/// One rule of a <see cref="FaultInjectingDevice"/>: which calls it fails and how many more times.
/// Returned so a test can remove just this rule.
/// </summary>
public sealed class FaultRule
{
    internal FaultRule(DeviceOperation operation, long start, long end, InjectedError error, int? remaining)
    {
        Operation = operation;
        Start = start;
        End = end;
        Error = error;
        Remaining = remaining;
    }

    /// <summary>The operation this rule fails.</summary>
    public DeviceOperation Operation { get; }

    /// <summary>First byte of the range a read or write must overlap to match (flushes ignore the range).</summary>
    public long Start { get; }

    /// <summary>End of that range, exclusive.</summary>
    public long End { get; }

    /// <summary>The errno raised.</summary>
    public InjectedError Error { get; }

    /// <summary>Failures left for a transient rule; null for a permanent one. Guarded by the device's lock.</summary>
    internal int? Remaining { get; set; }

    internal bool Matches(DeviceOperation operation, long offset, int length) =>
        operation == Operation && (operation == DeviceOperation.Flush || (offset < End && offset + length > Start));
}

/// <summary>
/// A decorator that fails chosen calls with EIO or ENOSPC, to prove the layers above survive
/// device errors: transient ones (the next N matching calls fail, then the device heals) and
/// permanent ones (every matching call fails until the rule is cleared).
/// </summary>
/// <remarks>
/// <para><b>States.</b> An ordered list of rules. A call is checked against them in order; the
/// first that matches fails it, and a transient rule that has used up its count is removed.</para>
/// <para><b>Invariants.</b> Arguments are validated before any rule is consulted, so a bad
/// call is an <see cref="ArgumentException"/> here as on every device. A failed call never
/// reaches the inner device: a failed write leaves the media unchanged, a failed flush makes
/// nothing durable. The failure arrives through the returned task, as a real device's would.</para>
/// <para><b>Locking.</b> One lock over the rules; counters are interlocked. The inner device is
/// called outside the lock.</para>
/// <para><b>Gather writes.</b> The interface's default: gathered, then this device's own
/// <see cref="WriteAsync"/>, so a gather write is counted, matched and failed exactly as one
/// write of its whole range (a test device: the copy costs nothing that matters).</para>
/// <para><b>Durability.</b> That of the inner device, which this decorator owns and disposes.</para>
/// </remarks>
public sealed class FaultInjectingDevice(IBlockDevice inner) : IBlockDevice
{
    private readonly IBlockDevice _inner = inner ?? throw new ArgumentNullException(nameof(inner));
    private readonly List<FaultRule> _rules = [];
    private readonly Lock _lock = new();
    private long _reads;
    private long _writes;
    private long _flushes;
    private long _injectedFailures;

    /// <inheritdoc/>
    public long Size => _inner.Size;

    /// <summary>Read calls received (failed or not).</summary>
    public long ReadCount => Interlocked.Read(ref _reads);

    /// <summary>Write calls received (failed or not).</summary>
    public long WriteCount => Interlocked.Read(ref _writes);

    /// <summary>Flush calls received (failed or not).</summary>
    public long FlushCount => Interlocked.Read(ref _flushes);

    /// <summary>Calls failed by a rule.</summary>
    public long InjectedFailureCount => Interlocked.Read(ref _injectedFailures);

    /// <summary>
    /// Fails the next <paramref name="count"/> calls of <paramref name="operation"/> that overlap
    /// [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>); later calls succeed.
    /// </summary>
    public FaultRule FailNext(DeviceOperation operation, int count, InjectedError error = InjectedError.IoError,
        long offset = 0, long length = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        return AddRule(operation, error, offset, length, count);
    }

    /// <summary>Fails every call of <paramref name="operation"/> overlapping the range until the rule is cleared.</summary>
    public FaultRule FailAlways(DeviceOperation operation, InjectedError error = InjectedError.IoError,
        long offset = 0, long length = long.MaxValue) =>
        AddRule(operation, error, offset, length, remaining: null);

    /// <summary>Removes one rule; the device behaves as if it had never been added.</summary>
    public void Clear(FaultRule rule)
    {
        lock (_lock)
        {
            _rules.Remove(rule);
        }
    }

    /// <summary>Removes every rule: the device heals.</summary>
    public void ClearAll()
    {
        lock (_lock)
        {
            _rules.Clear();
        }
    }

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        BlockAlignment.Validate(Size, offset, buffer);
        Interlocked.Increment(ref _reads);
        return Inject(DeviceOperation.Read, offset, buffer.Length) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.ReadAsync(offset, buffer);
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        BlockAlignment.Validate(Size, offset, data);
        Interlocked.Increment(ref _writes);
        return Inject(DeviceOperation.Write, offset, data.Length) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.WriteAsync(offset, data, durable);
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync()
    {
        Interlocked.Increment(ref _flushes);
        return Inject(DeviceOperation.Flush, 0, 0) is { } failure
            ? ValueTask.FromException(failure)
            : _inner.FlushAsync();
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _inner.DisposeAsync();

    private FaultRule AddRule(DeviceOperation operation, InjectedError error, long offset, long length, int? remaining)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        if (!Enum.IsDefined(error))
        {
            throw new ArgumentOutOfRangeException(nameof(error), error, "not an injectable error");
        }

        var end = length > long.MaxValue - offset ? long.MaxValue : offset + length;
        var rule = new FaultRule(operation, offset, end, error, remaining);
        lock (_lock)
        {
            _rules.Add(rule);
        }

        return rule;
    }

    /// <summary>The exception to fail this call with, or null to let it through.</summary>
    private IOException? Inject(DeviceOperation operation, long offset, int length)
    {
        FaultRule? fired;
        lock (_lock)
        {
            fired = _rules.Find(rule => rule.Matches(operation, offset, length));
            if (fired?.Remaining is { } remaining)
            {
                fired.Remaining = remaining - 1;
                if (remaining == 1)
                {
                    _rules.Remove(fired);
                }
            }
        }

        if (fired is null)
        {
            return null;
        }

        Interlocked.Increment(ref _injectedFailures);
        var errno = (int)fired.Error;
        var what = operation == DeviceOperation.Flush ? "flush" : $"{operation.ToString().ToLowerInvariant()} of {length} bytes at offset {offset}";
        return new IOException($"injected fault: {what} failed: {Errno.Describe(errno)}", errno);
    }
}
