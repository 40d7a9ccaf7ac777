using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io;

/// <summary>
/// The io_uring backend of <see cref="FileDevice"/>: one ring per open file (native/uring_shim.c),
/// requests submitted in batches by whichever caller finds the ring free, completions reaped by
/// one thread of this file. No thread waits per call.
/// </summary>
/// <remarks>
/// <para><b>Submission.</b> A call queues its request (<see cref="UringRequest"/>) and then
/// tries to become the submitter (<see cref="_submitting"/>, 0 or 1). The submitter takes
/// everything queued, up to <see cref="MaxInFlight"/> in the kernel, and enters the kernel once
/// per batch; callers that find a submitter leave their request to it. After letting go, the
/// submitter looks at the queue again, so no request is stranded between its last look and a
/// caller's failed attempt. At queue depth 1 this is one io_uring_enter per I/O, as pread was.</para>
/// <para><b>Completion.</b> The reaper thread blocks in the shim until completions are there
/// and takes up to a batch at a time. A short read or write is queued again for its remainder,
/// EINTR and EAGAIN again whole; anything else fails the call with the errno (HResult). A
/// request's continuation runs on the thread pool, never on the reaper.</para>
/// <para><b>Gather writes.</b> One request (IORING_OP_WRITEV, with RWF_DSYNC when durable)
/// carries a whole gather: its segments stay pinned and its iovecs (merged where segments
/// follow each other in memory) stay in the request's own native memory until the last
/// completion, since the kernel may read them after submission. Each submission takes at most
/// IOV_MAX (1024) iovecs; what is left after a completion, the next chunk or the rest of a
/// short write, is queued again like any short transfer, so chunks go one after another. Not
/// several requests at once: a chunk of 1024 blocks is 4 MiB or more, enough to keep the device
/// busy, and one request per gather needs no joining of tasks, allocates nothing, and fails
/// once, with no chunk still in the kernel reading buffers the caller has taken back.</para>
/// <para><b>Bound.</b> At most <see cref="MaxInFlight"/> requests are in the kernel, the size of
/// the completion queue, so completions never overflow it; more wait in the queue, and the
/// reaper submits them as completions make room.</para>
/// <para><b>Lifetime.</b> The ring holds a reference on the descriptor (it passes the raw fd).
/// Disposal queues a stop request; the reaper exits once it and everything before it have
/// completed, waits for the last submitter to leave the shim, then destroys the ring and
/// releases the descriptor. Calls after disposal throw.
/// A submission the kernel refuses outright (not EINTR/EAGAIN/EBUSY, which the shim retries)
/// leaves the ring unusable: that call and every later one fail with its errno.</para>
/// </remarks>
internal sealed unsafe class UringFileIo : IFileIo
{
    /// <summary>Submission queue entries: the largest batch entering the kernel at once.</summary>
    private const uint SubmissionEntries = 128;

    /// <summary>Completion queue entries, and so the most requests in the kernel at once.</summary>
    private const int MaxInFlight = 1024;

    private const int ReapBatch = 64;

    /// <summary>The cookie of the stop request; real requests' cookies are GCHandle addresses.</summary>
    private const ulong StopCookie = 0;

    private readonly SafeFileHandle _handle;
    private readonly int _fd;
    private readonly nint _ring;
    private readonly ConcurrentQueue<UringRequest> _queue = new();
    private readonly UringRequest[] _batch = new UringRequest[SubmissionEntries]; // the submitter's only
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _submitting;
    private int _inFlight;
    private int _brokenErrno;
    private int _disposed;

    private UringFileIo(SafeFileHandle handle, string path, nint ring)
    {
        _handle = handle;
        Path = path;
        _ring = ring;
        var added = false;
        handle.DangerousAddRef(ref added);
        _fd = (int)handle.DangerousGetHandle();
        new Thread(Reap) { IsBackground = true, Name = "io_uring reaper" }.Start();
    }

    public string Path { get; }

    /// <summary>Sets up a ring for <paramref name="handle"/>; IOException with the errno if the kernel refuses.</summary>
    public static UringFileIo Create(SafeFileHandle handle, string path)
    {
        var result = UringShim.Create(SubmissionEntries, MaxInFlight, out var ring);
        if (result < 0)
        {
            throw Errno.Exception("io_uring_setup", path, -result);
        }

        return new UringFileIo(handle, path, ring);
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) =>
        Start(UringShim.Operation.Read, offset, buffer);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) =>
        Start(durable ? UringShim.Operation.WriteDsync : UringShim.Operation.Write, offset, MemoryMarshal.AsMemory(data));

    public ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        ThrowIfUnusable();
        var operation = durable ? UringShim.Operation.WriteVDsync : UringShim.Operation.WriteV;
        return Enqueue(UringRequest.RentGather(this, operation, offset, segments.Span));
    }

    public ValueTask FlushAsync() => Start(UringShim.Operation.Fdatasync, 0, Memory<byte>.Empty);

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _queue.Enqueue(UringRequest.Stop);
            Submit();
        }

        return new ValueTask(_stopped.Task);
    }

    private ValueTask Start(UringShim.Operation operation, long offset, Memory<byte> buffer)
    {
        ThrowIfUnusable();
        return Enqueue(UringRequest.Rent(this, operation, offset, buffer));
    }

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (Volatile.Read(ref _brokenErrno) is var errno and not 0)
        {
            throw Errno.Exception("io_uring_enter", Path, errno);
        }
    }

    private ValueTask Enqueue(UringRequest request)
    {
        var task = request.Task;
        _queue.Enqueue(request);
        Submit();
        return task;
    }

    /// <summary>Queues a request again (the rest of a short transfer, or after EINTR); the reaper submits it.</summary>
    internal void Requeue(UringRequest request) => _queue.Enqueue(request);

    /// <summary>Submits what is queued, unless another thread is already doing so (see the remarks).</summary>
    private void Submit()
    {
        while (!_queue.IsEmpty && Volatile.Read(ref _inFlight) < MaxInFlight)
        {
            if (Interlocked.CompareExchange(ref _submitting, 1, 0) != 0)
            {
                return;
            }

            try
            {
                SubmitQueued();
            }
            finally
            {
                Volatile.Write(ref _submitting, 0);
            }
        }
    }

    private void SubmitQueued()
    {
        var batch = stackalloc UringShim.Request[(int)SubmissionEntries];
        while (true)
        {
            uint count = 0;
            while (count < SubmissionEntries && Volatile.Read(ref _inFlight) + count < MaxInFlight && _queue.TryDequeue(out var request))
            {
                batch[count] = request.Describe(_fd);
                _batch[count] = request;
                count++;
            }

            if (count == 0)
            {
                return;
            }

            Interlocked.Add(ref _inFlight, (int)count);
            var result = _brokenErrno == 0 ? UringShim.Submit(_ring, batch, count) : -_brokenErrno;
            if (result < 0)
            {
                // The ring refused the batch outright: it is unusable (see the remarks).
                Volatile.Write(ref _brokenErrno, -result);
                Interlocked.Add(ref _inFlight, -(int)count);
                for (var i = 0; i < count; i++)
                {
                    if (_batch[i] == UringRequest.Stop)
                    {
                        _stopped.TrySetResult(); // the reaper waits on for good; the process is on its way out
                    }
                    else
                    {
                        _batch[i].Fail(Errno.Exception("io_uring_enter", Path, -result));
                    }

                    _batch[i] = null!;
                }
            }
        }
    }

    private void Reap()
    {
        var cookies = stackalloc ulong[ReapBatch];
        var results = stackalloc int[ReapBatch];
        var stopping = false;
        while (!stopping || Volatile.Read(ref _inFlight) > 0 || !_queue.IsEmpty)
        {
            var count = UringShim.Reap(_ring, cookies, results, ReapBatch);
            if (count < 0)
            {
                // Waiting on a ring this object owns cannot fail but for a bug; nothing could complete the callers' calls.
                Environment.FailFast($"io_uring wait on '{Path}' failed: {Errno.Describe(-count)}");
            }

            Interlocked.Add(ref _inFlight, -count);
            for (var i = 0; i < count; i++)
            {
                if (cookies[i] == StopCookie)
                {
                    stopping = true;
                }
                else
                {
                    UringRequest.FromCookie(cookies[i]).Complete(results[i]);
                }
            }

            Submit();
        }

        // A submitter may still be inside the shim (it submitted the stop itself and has not
        // returned yet): take the submitting flag for good before the ring goes. Dispose-time only.
        var wait = new SpinWait();
        while (Interlocked.CompareExchange(ref _submitting, 1, 0) != 0)
        {
            wait.SpinOnce();
        }

        UringShim.Destroy(_ring);
        _handle.DangerousRelease();
        _stopped.TrySetResult();
    }
}
