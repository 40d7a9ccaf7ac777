using System.Collections.Concurrent;

namespace BlockOverlay.Io;

/// <summary>
/// Dedicated threads for the system calls that block until the media has the data
/// (pwritev2 with RWF_DSYNC, fdatasync): they never run on the .NET thread pool.
/// </summary>
/// <remarks>
/// Why: a durable write of a few MiB holds its thread for milliseconds. On the thread pool,
/// one tenant's flush traffic (a burst of FLUSH requests, each writing back 8 MiB batches)
/// blocked every worker thread, and other tenants' requests, acknowledged from memory, waited
/// for the pool to inject threads: a steady tenant's p99 write latency went from 3.8 ms to
/// 20 ms beside such a neighbour (perf/noisy-neighbour). Here blocking calls queue for their
/// own threads, and the pool is left to request handling.
/// <para>
/// <see cref="Threads"/> threads serve one FIFO queue, so at most that many blocking calls are
/// in the kernel at once (more would only queue in the device). The threads are background
/// threads that live as long as the process. A call's continuation runs on the thread pool,
/// not on the I/O thread, which goes straight back to the queue.
/// </para>
/// </remarks>
internal static class BlockingCalls
{
    /// <summary>Enough for several instances' flush write-backs to be in the kernel at once.</summary>
    public const int Threads = 16;

    private static readonly BlockingCollection<(Action Call, TaskCompletionSource Done)> s_queue = Start();

    /// <summary>Runs <paramref name="call"/> on an I/O thread; the task completes (or fails) with it.</summary>
    public static Task Run(Action call)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        s_queue.Add((call, done));
        return done.Task;
    }

    private static BlockingCollection<(Action, TaskCompletionSource)> Start()
    {
        var queue = new BlockingCollection<(Action, TaskCompletionSource)>();
        for (int i = 0; i < Threads; i++)
        {
            new Thread(() => Serve(queue)) { IsBackground = true, Name = $"blocking I/O {i}" }.Start();
        }

        return queue;
    }

    private static void Serve(BlockingCollection<(Action Call, TaskCompletionSource Done)> queue)
    {
        foreach (var (call, done) in queue.GetConsumingEnumerable())
        {
            try
            {
                call();
                done.SetResult();
            }
#pragma warning disable CA1031 // Every failure belongs to the caller, who awaits the task.
            catch (Exception e)
#pragma warning restore CA1031
            {
                done.SetException(e);
            }
        }
    }
}
