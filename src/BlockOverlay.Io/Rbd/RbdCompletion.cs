using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// One librbd asynchronous call as a task: a completion whose callback (on a librbd thread)
/// takes the call's result, releases the completion and completes the task. Continuations
/// run on the thread pool, never on librbd's thread, which must not block or call back in.
/// </summary>
internal sealed unsafe class RbdCompletion
{
    private readonly TaskCompletionSource<long> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private GCHandle _self;

    private RbdCompletion()
    {
    }

    /// <summary>The completion to pass to an rbd_aio_* call.</summary>
    public nint Handle { get; private set; }

    /// <summary>The call's return value: a byte count or 0, or a negative errno.</summary>
    public Task<long> Result => _done.Task;

    public static RbdCompletion Create()
    {
        var completion = new RbdCompletion();
        completion._self = GCHandle.Alloc(completion);
        int result = LibRbd.rbd_aio_create_completion(GCHandle.ToIntPtr(completion._self), &OnComplete, out var handle);
        if (result < 0)
        {
            completion._self.Free();
            throw new IOException($"rbd_aio_create_completion failed: {Errno.Describe(-result)}", -result);
        }

        completion.Handle = handle;
        return completion;
    }

    /// <summary>For a call that was refused at once (it returned an error): its callback never runs.</summary>
    public void Abandon()
    {
        LibRbd.rbd_aio_release(Handle);
        _self.Free();
    }

    [UnmanagedCallersOnly]
    private static void OnComplete(nint completion, nint argument)
    {
        var self = GCHandle.FromIntPtr(argument);
        var target = (RbdCompletion)self.Target!;
        self.Free();
        long result = LibRbd.rbd_aio_get_return_value(completion);
        LibRbd.rbd_aio_release(completion);
        target._done.SetResult(result);
    }
}
