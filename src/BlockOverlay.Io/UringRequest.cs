using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>
/// One call of <see cref="UringFileIo"/> on its way through the ring: what to ask the kernel,
/// the pinned buffer (or a gather write's pinned segments and their iovecs), and the task its
/// caller awaits. Pooled, so a call allocates nothing.
/// </summary>
/// <remarks>
/// The cookie the kernel hands back is the address of a GCHandle this object holds for life
/// (pooled objects are never collected). The buffers stay pinned from <see cref="Rent"/> (or
/// <see cref="RentGather"/>) until the last completion; the object returns to the pool when
/// its caller takes the result. Continuations run asynchronously, on the thread pool, never on
/// the reaper thread.
/// <para>A gather write's iovecs live in native memory this object owns, grown to the largest
/// gather it has carried and then reused (at most 16 bytes per segment: 32 KiB for 2,048), so
/// the kernel can read them until the completion is reaped. Each submission carries the next
/// <see cref="IoVecs.Max"/> of them: a larger gather, or a short write, goes round again for
/// the rest, one submission after another (see <see cref="UringFileIo"/>).</para>
/// </remarks>
internal sealed unsafe class UringRequest : IValueTaskSource
{
    private static readonly ConcurrentBag<UringRequest> s_pool = [];

    private readonly GCHandle _self;
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private UringFileIo? _owner;
    private UringShim.Operation _operation;
    private readonly List<MemoryHandle> _pins = [];
    private byte* _next;
    private int _remaining;
    private long _offset;
    private LibC.IoVec* _iovecs;
    private int _iovecCapacity;
    private int _iovecNext;
    private int _iovecCount;

    private UringRequest()
    {
        _self = GCHandle.Alloc(this);
    }

    /// <summary>The stop request of a ring (a no-op with the stop cookie, 0).</summary>
    public static UringRequest Stop { get; } = new();

    public ValueTask Task => new(this, _core.Version);

    public static UringRequest Rent(UringFileIo owner, UringShim.Operation operation, long offset, Memory<byte> buffer)
    {
        var request = Take(owner, operation, offset);
        var pin = buffer.Pin();
        request._pins.Add(pin);
        request._next = (byte*)pin.Pointer;
        request._remaining = buffer.Length;
        return request;
    }

    /// <summary>A gather write (<see cref="UringShim.Operation.WriteV"/> or <see cref="UringShim.Operation.WriteVDsync"/>) of checked segments.</summary>
    public static UringRequest RentGather(UringFileIo owner, UringShim.Operation operation, long offset, ReadOnlySpan<ReadOnlyMemory<byte>> segments)
    {
        var request = Take(owner, operation, offset);
        request.ReserveIoVecs(segments.Length);
        try
        {
            request._iovecCount = IoVecs.Pin(segments, request._pins, request._iovecs);
        }
        catch
        {
            request.Unpin();
            request._owner = null;
            s_pool.Add(request);
            throw;
        }

        request._iovecNext = 0;
        request._remaining = 0;
        foreach (var segment in segments)
        {
            request._remaining += segment.Length;
        }

        return request;
    }

    public static UringRequest FromCookie(ulong cookie) => (UringRequest)GCHandle.FromIntPtr((nint)cookie).Target!;

    /// <summary>The shim's view of what is left to do (of a gather, the next <see cref="IoVecs.Max"/> iovecs at most).</summary>
    public UringShim.Request Describe(int fd) => this == Stop
        ? new UringShim.Request { Cookie = 0, Op = UringShim.Operation.Nop }
        : new UringShim.Request
        {
            Cookie = (ulong)GCHandle.ToIntPtr(_self),
            Offset = _offset,
            Buffer = IsGather ? _iovecs + _iovecNext : _next,
            Length = IsGather ? (uint)Math.Min(_iovecCount - _iovecNext, IoVecs.Max) : (uint)_remaining,
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

        if (IsGather)
        {
            _iovecNext += IoVecs.Advance(_iovecs + _iovecNext, _iovecCount - _iovecNext, result);
        }
        else
        {
            _next += result;
        }

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

    private bool IsGather => _operation is UringShim.Operation.WriteV or UringShim.Operation.WriteVDsync;

    private string Call => _operation switch
    {
        UringShim.Operation.Read => "read",
        UringShim.Operation.WriteDsync => "write(RWF_DSYNC)",
        UringShim.Operation.WriteV => "writev",
        UringShim.Operation.WriteVDsync => "writev(RWF_DSYNC)",
        _ => "write",
    };

    private static UringRequest Take(UringFileIo owner, UringShim.Operation operation, long offset)
    {
        var request = s_pool.TryTake(out var pooled) ? pooled : new UringRequest();
        request._owner = owner;
        request._operation = operation;
        request._offset = offset;
        return request;
    }

    /// <summary>Room for <paramref name="count"/> iovecs; grows (to a power of two) only past the largest gather so far.</summary>
    private void ReserveIoVecs(int count)
    {
        if (count <= _iovecCapacity)
        {
            return;
        }

        NativeMemory.Free(_iovecs);
        _iovecCapacity = (int)BitOperations.RoundUpToPowerOf2((uint)count);
        _iovecs = (LibC.IoVec*)NativeMemory.Alloc((nuint)_iovecCapacity, (nuint)sizeof(LibC.IoVec));
    }

    private void Unpin()
    {
        foreach (var pin in _pins)
        {
            pin.Dispose();
        }

        _pins.Clear();
    }

    private void Finish(Exception? error)
    {
        Unpin();
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
