using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>
/// One call of <see cref="UringFileIo"/> on its way through the ring: what to ask the kernel,
/// the pinned buffer, and the task its caller awaits. Pooled, so a call allocates nothing.
/// </summary>
/// <remarks>
/// The cookie the kernel hands back is the address of a GCHandle this object holds for life
/// (pooled objects are never collected). The buffer stays pinned from <see cref="Rent"/> until
/// the last completion; the object returns to the pool when its caller takes the result.
/// Continuations run asynchronously, on the thread pool, never on the reaper thread.
/// </remarks>
internal sealed unsafe class UringRequest : IValueTaskSource
{
    private static readonly ConcurrentBag<UringRequest> s_pool = [];

    private readonly GCHandle _self;
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private UringFileIo? _owner;
    private UringShim.Operation _operation;
    private MemoryHandle _pin;
    private byte* _next;
    private int _remaining;
    private long _offset;

    private UringRequest()
    {
        _self = GCHandle.Alloc(this);
    }

    /// <summary>The stop request of a ring (a no-op with the stop cookie, 0).</summary>
    public static UringRequest Stop { get; } = new();

    public ValueTask Task => new(this, _core.Version);

    public static UringRequest Rent(UringFileIo owner, UringShim.Operation operation, long offset, Memory<byte> buffer)
    {
        var request = s_pool.TryTake(out var pooled) ? pooled : new UringRequest();
        request._owner = owner;
        request._operation = operation;
        request._offset = offset;
        request._pin = buffer.Pin();
        request._next = (byte*)request._pin.Pointer;
        request._remaining = buffer.Length;
        return request;
    }

    public static UringRequest FromCookie(ulong cookie) => (UringRequest)GCHandle.FromIntPtr((nint)cookie).Target!;

    /// <summary>The shim's view of what is left to do.</summary>
    public UringShim.Request Describe(int fd) => this == Stop
        ? new UringShim.Request { Cookie = 0, Op = UringShim.Operation.Nop }
        : new UringShim.Request
        {
            Cookie = (ulong)GCHandle.ToIntPtr(_self),
            Offset = _offset,
            Buffer = _next,
            Length = (uint)_remaining,
            Fd = fd,
            Op = _operation,
        };

    /// <summary>The kernel's answer for the last submission: done, the rest queued again, or failed.</summary>
    public void Complete(int result)
    {
        var owner = _owner!;
        if (result is -Errno.EINTR or -Errno.EAGAIN)
        {
            owner.Requeue(this);
            return;
        }

        if (result < 0)
        {
            Fail(_operation == UringShim.Operation.Fdatasync
                ? Errno.Exception("fdatasync", owner.Path, -result)
                : Errno.Exception(Call, owner.Path, _offset, -result));
            return;
        }

        if (_operation == UringShim.Operation.Fdatasync || result == _remaining)
        {
            Finish(null);
            return;
        }

        if (result == 0)
        {
            Fail(_operation == UringShim.Operation.Read ? FileDevice.UnexpectedEnd(Call, owner.Path, _offset) : FileDevice.NoProgress(Call, owner.Path, _offset));
            return;
        }

        _next += result;
        _offset += result;
        _remaining -= result;
        owner.Requeue(this);
    }

    public void Fail(Exception error) => Finish(error);

    void IValueTaskSource.GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            s_pool.Add(this);
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    private string Call => _operation switch
    {
        UringShim.Operation.Read => "read",
        UringShim.Operation.WriteDsync => "write(RWF_DSYNC)",
        _ => "write",
    };

    private void Finish(Exception? error)
    {
        _pin.Dispose();
        _pin = default;
        _owner = null;
        if (error is null)
        {
            _core.SetResult(true);
        }
        else
        {
            _core.SetException(error);
        }
    }
}
