namespace BlockOverlay.Io.Tests;

/// <summary>
/// Blocking system calls run on the I/O threads, never on the thread pool (whose threads
/// other tenants' requests need), and their failures reach the caller.
/// </summary>
[TestFixture]
public sealed class BlockingCallsTests
{
    [Test]
    public async Task A_call_runs_off_the_thread_pool_and_its_failure_reaches_the_caller()
    {
        bool onPool = true;
        await BlockingCalls.Run(() => onPool = Thread.CurrentThread.IsThreadPoolThread);
        Assert.That(onPool, Is.False);

        var failed = Assert.ThrowsAsync<IOException>(() => BlockingCalls.Run(() => throw new IOException("EIO")));
        Assert.That(failed!.Message, Is.EqualTo("EIO"));
    }

    [Test]
    public async Task Calls_that_block_do_not_hold_up_the_thread_pool()
    {
        // Every I/O thread blocked: work queued on the pool still runs at once.
        using var release = new ManualResetEventSlim();
        var blocked = Enumerable.Range(0, BlockingCalls.Threads).Select(_ => BlockingCalls.Run(() => release.Wait(TimeSpan.FromSeconds(20)))).ToArray();
        try
        {
            var ran = await Task.Run(() => true).WaitAsync(TimeSpan.FromSeconds(5));
            Assert.That(ran, Is.True);
        }
        finally
        {
            release.Set();
            await Task.WhenAll(blocked);
        }
    }
}
