using System.Collections.Concurrent;
using System.Diagnostics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using Microsoft.Extensions.Logging;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// The background writer outlives every failure and counts it; a bug is also logged at
/// Error with its stack, never only counted, while a device failure is only counted.
/// </summary>
public class BackgroundFailureTests
{
    [Test]
    public async Task A_bug_in_background_write_back_is_counted_and_logged_with_its_stack()
    {
        var log = await FailBackgroundWriteBackAsync(() => new InvalidOperationException("a bug below the cache"));

        var errors = log.Where(e => e.Level == LogLevel.Error).ToList();
        Assert.That(errors, Is.Not.Empty, "the bug was only counted");
        Assert.That(errors[0].Exception, Is.TypeOf<InvalidOperationException>());
        Assert.That(errors[0].Exception!.StackTrace, Is.Not.Empty);
    }

    [Test]
    public async Task A_device_failure_in_background_write_back_is_counted_not_logged_as_a_bug()
    {
        var log = await FailBackgroundWriteBackAsync(() => new IOException("the device failed"));

        Assert.That(log.Where(e => e.Level == LogLevel.Error), Is.Empty);
    }

    /// <summary>Dirty data whose background write-back fails with what it is given until it has failed once; returns the log.</summary>
    private static async Task<List<(LogLevel Level, Exception? Exception)>> FailBackgroundWriteBackAsync(Func<Exception> failure)
    {
        var memory = new MemoryDevice(64 * MiB);
        var device = new FailingDataDevice(memory, failure);
        var log = new ConcurrentQueue<(LogLevel, Exception?)>();
        await using var store = await NewStoreAsync(memory, device);
        await using var cache = new WriteBackCache(store, new CacheOptions { MaxDirtyAge = TimeSpan.FromMilliseconds(20) }, new CapturingLogger(log));
        var export = (await OpenAsync(cache, 16 * MiB, FlushMode.Isolated, "x"))[0];
        device.FailFrom(DataStart(store));
        await export.WriteAsync(0, Filled(Block, 1), WriteFlags.None);

        var clock = Stopwatch.StartNew();
        while (cache.BackgroundFailures == 0)
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "background write-back never failed");
            await Task.Delay(10);
        }

        device.Heal();
        await export.DisposeAsync();
        return [.. log];
    }

    /// <summary>Fails writes to the data region, once told where it starts, until healed.</summary>
    private sealed class FailingDataDevice(IBlockDevice inner, Func<Exception> failure) : IBlockDevice
    {
        private long _failFrom = long.MaxValue;

        public long Size => inner.Size;

        public void FailFrom(long offset) => Interlocked.Exchange(ref _failFrom, offset);

        public void Heal() => Interlocked.Exchange(ref _failFrom, long.MaxValue);

        public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) =>
            offset >= Interlocked.Read(ref _failFrom) ? ValueTask.FromException(failure()) : inner.WriteAsync(offset, data, durable);

        public ValueTask FlushAsync() => inner.FlushAsync();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    private sealed class CapturingLogger(ConcurrentQueue<(LogLevel, Exception?)> entries) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            entries.Enqueue((logLevel, exception));
    }
}
