using System.Diagnostics.Metrics;
using BlockOverlay.Engine.Qos;
using BlockOverlay.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Engine.Cache;

/// <summary>
/// The write-back cache of one store: every instance's dirty blocks, tagged by instance,
/// the limits on them, and the background writer that moves them to the store early.
/// </summary>
/// <remarks>
/// The design (isolation, background write-back and its order, throttling) is told once, in
/// docs/ARCHITECTURE.md ("The write-back cache and the flusher") and docs/DESIGN.md
/// (DESIGN.md, invariants 2 and 7). Locally: the background writer does one batch at a time and yields
/// to flushes for at most <see cref="FlushYield"/>, so a flush waits behind one batch at most
/// and back-to-back flushes cannot starve throttled writers. <see cref="_lock"/> guards the
/// instances, the dirty ones and the flush/wake signals; it is never held across I/O or while
/// taking an instance's gate.
/// <para>
/// <b>Thousands of idle instances.</b> Nothing here scans every open instance on a path that
/// runs per instance or per pass: attaching looks its instance up, and the background writer
/// and the throttle look only at <see cref="_dirty"/>. An instance enters it when its dirty
/// bytes leave zero (<see cref="MarkDirty"/>, after its gate is let go) and leaves it when the
/// writer finds it clean; since it is marked after the bytes are counted and dropped only
/// after they are read as zero under the lock, an instance holding dirty data is in it or
/// about to be.
/// </para>
/// </remarks>
public sealed class WriteBackCache : IAsyncDisposable
{
    /// <summary>Longest time a background batch waits for flushes in progress.</summary>
    public static readonly TimeSpan FlushYield = TimeSpan.FromMilliseconds(50);

    private readonly Lock _lock = new();
    private readonly Dictionary<StoreInstance, InstanceCache> _caches = [];
    private readonly HashSet<InstanceCache> _dirty = []; // open instances that may hold dirty data
    private readonly WeightedTurns<InstanceCache> _turns = new(); // background write-back's shares among throttled instances
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private readonly ILogger _logger;
    private long _dirtyBytes;
    private long _backgroundFailures;
    private int _flushesActive;
    private TaskCompletionSource _noFlush = Completed();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _stopped;

    /// <param name="logger">Where a bug in the background writer is reported (with its stack).</param>
    public WriteBackCache(UpperStore store, CacheOptions? options = null, ILogger? logger = null)
    {
        Store = store ?? throw new ArgumentNullException(nameof(store));
        _logger = logger ?? NullLogger.Instance;
        Options = options ?? new CacheOptions();
        if (Options.Problem() is { } problem)
        {
            throw new ArgumentException($"cache options: {problem}", nameof(options));
        }

        // Spares for a quarter of an instance's limit by default (256 MiB): what a flush or a
        // background batch frees is taken again by the next writes without an allocation.
        Blocks = new DirtyBlockPool((int)Math.Min(int.MaxValue / 2, (long)(Options.BackgroundRatio * Options.InstanceDirtyLimit) / UpperStore.BlockSize));
        Meter = new Meter(CacheMeter.Name);
        FlushDuration = Meter.CreateHistogram<double>(CacheMeter.FlushDuration, "s", "How long the instance's flushes took.");
        _writer = Task.Run(() => WriteInBackgroundAsync(_stop.Token));
    }

    public UpperStore Store { get; }

    /// <summary>Spare dirty blocks, shared by the instances.</summary>
    internal DirtyBlockPool Blocks { get; }

    public CacheOptions Options { get; }

    /// <summary>This cache's measurements (see <see cref="CacheMeter"/>); disposed when the cache is.</summary>
    public Meter Meter { get; }

    internal Histogram<double> FlushDuration { get; }

    /// <summary>Dirty bytes of every instance together.</summary>
    public long DirtyBytes => Interlocked.Read(ref _dirtyBytes);

    /// <summary>Background write-backs or checkpoints that failed (they are retried).</summary>
    public long BackgroundFailures => Interlocked.Read(ref _backgroundFailures);

    /// <summary>The open instances, with their dirty bytes and counters, for metrics.</summary>
    public IReadOnlyList<CachedInstance> Instances
    {
        get
        {
            lock (_lock)
            {
                return [.. _caches.Values.Select(c => new CachedInstance(c.Instance.Name, c.DirtyBytes, c.Counters, c.Instance.Definition.Qos))];
            }
        }
    }

    /// <summary>
    /// Stops background work and writes back what is left (exports normally did it when they
    /// closed), committing every instance that is not volatile. The store stays open.
    /// </summary>
    /// <exception cref="AggregateException">Some instance could not be written back; the others were.</exception>
    public async ValueTask DisposeAsync()
    {
        await StopWriterAsync();
        var failures = new List<Exception>();
        foreach (var cache in Snapshot())
        {
            try
            {
                await cache.WriteBackAsync(long.MaxValue, WriteReason.Background, Options.FlushBatchBlocks);
                if (cache.Instance.Definition.FlushMode != FlushMode.Volatile)
                {
                    await Store.CommitAsync(cache.Instance);
                }
            }
#pragma warning disable CA1031 // Nothing is lost: every failure, a bug included, is in the AggregateException.
            catch (Exception e)
#pragma warning restore CA1031
            {
                failures.Add(e); // one instance's failure must not cost the next one its write-back
            }
        }

        _stop.Dispose();
        Meter.Dispose();
        if (failures.Count > 0)
        {
            throw new AggregateException("writing back at close failed for some instances", failures);
        }
    }

    /// <summary>
    /// Stops background work and forgets every dirty block, writing nothing: what a crash
    /// does to the cache. For crash simulations, and for a server that must stop at once.
    /// </summary>
    public async Task AbandonAsync()
    {
        await StopWriterAsync();
        foreach (var cache in Snapshot())
        {
            cache.Discard();
        }

        _stop.Dispose();
        Meter.Dispose();
    }

    internal InstanceCache Attach(StoreInstance instance)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopped, this);
            if (_caches.ContainsKey(instance))
            {
                // Two caches for one instance would each think they hold its newest data.
                throw new InvalidOperationException($"instance '{instance.Name}' is already open; its connections share one export");
            }

            var cache = new InstanceCache(this, instance);
            _caches.Add(instance, cache);
            return cache;
        }
    }

    internal void Detach(InstanceCache cache)
    {
        lock (_lock)
        {
            _caches.Remove(cache.Instance);
            _dirty.Remove(cache);
        }
    }

    /// <summary>Takes back a cache detached for a delete that then failed: its dirty data is written back as before.</summary>
    internal void Reattach(InstanceCache cache)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_stopped, this);
            _caches.TryAdd(cache.Instance, cache);
        }

        MarkDirty(cache);
        Wake();
    }

    /// <summary>
    /// The global flush: writes back every instance's dirty data, then commits every instance
    /// of the store. Returns the data and journal bytes it wrote.
    /// </summary>
    internal async Task<(long Data, long Meta)> FlushEveryoneAsync()
    {
        long data = 0;
        foreach (var cache in Snapshot())
        {
            data += await cache.WriteBackAsync(cache.FlushPoint(), WriteReason.Flush, Options.FlushBatchBlocks);
        }

        var commits = await Task.WhenAll(Store.Instances.Select(Store.CommitAsync));
        return (data, commits.Sum());
    }

    /// <summary>Whether an instance's writers must wait (see "Throttling").</summary>
    internal bool OverLimit(InstanceCache cache)
    {
        long mine = cache.DirtyBytes;
        if (mine >= Options.InstanceDirtyLimit)
        {
            return true;
        }

        if (DirtyBytes < Options.GlobalDirtyLimit)
        {
            return false;
        }

        int holders;
        lock (_lock)
        {
            holders = Math.Max(1, _dirty.Count(c => c.DirtyBytes > 0));
        }

        return mine >= Options.GlobalDirtyLimit / holders;
    }

    internal void AddDirty(long bytes) => Interlocked.Add(ref _dirtyBytes, bytes);

    /// <summary>
    /// An instance's dirty bytes left zero (see "Thousands of idle instances"): the background
    /// writer looks at it from now on. Called without its gate; a detached instance is not taken.
    /// </summary>
    internal void MarkDirty(InstanceCache cache)
    {
        lock (_lock)
        {
            if (_caches.TryGetValue(cache.Instance, out var open) && open == cache)
            {
                _dirty.Add(cache);
            }
        }
    }

    /// <summary>Marks a flush in progress until the result is disposed: background batches yield to it.</summary>
    internal IDisposable BeginFlush()
    {
        lock (_lock)
        {
            if (_flushesActive++ == 0)
            {
                _noFlush = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }

        return new FlushScope(this);
    }

    /// <summary>Asks the background writer to look for work now.</summary>
    internal void Wake()
    {
        lock (_lock)
        {
            _wake.TrySetResult();
        }
    }

    private void EndFlush()
    {
        TaskCompletionSource? idle = null;
        lock (_lock)
        {
            if (--_flushesActive == 0)
            {
                idle = _noFlush;
            }
        }

        idle?.TrySetResult();
    }

    private async Task WriteInBackgroundAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Task wake;
            lock (_lock)
            {
                if (_wake.Task.IsCompleted)
                {
                    _wake = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                wake = _wake.Task;
            }

            await Task.WhenAny(wake, Task.Delay(Options.BackgroundInterval, stop));
            Blocks.TrimIfIdle();
            try
            {
                await WriteBackDueAsync(stop);
                await CheckpointIfDueAsync(stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
#pragma warning disable CA1031 // The loop must outlive any failure: throttled writers depend on it.
            catch (Exception e)
#pragma warning restore CA1031
            {
                // The data stays dirty and is tried again; throttled writers of the instance see
                // the error, and flushes fail with their own. The operator sees the count; a bug
                // is also logged with its stack. Pause so a full store is not hammered.
                Interlocked.Increment(ref _backgroundFailures);
                if (ExportFailures.Classify(e) is null)
                {
                    CacheLog.BackgroundBug(_logger, e);
                }

                // Cut short, without an exception, when the cache stops.
                await Task.Delay(TimeSpan.FromSeconds(1), stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task WriteBackDueAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested && PickDue() is { } cache)
        {
            await YieldToFlushesAsync();
            long written = await cache.WriteBackSomeAsync(Options.BackgroundBatchBlocks);
            if (written == 0)
            {
                return; // everything it holds is already on its way: look again later
            }

            _turns.Served(cache, written, cache.Instance.Definition.Qos.Weight);
        }
    }

    private async Task CheckpointIfDueAsync(CancellationToken stop)
    {
        if (!stop.IsCancellationRequested && Store.JournalFill >= Options.CheckpointAtJournalFill)
        {
            await YieldToFlushesAsync();
            await Store.CheckpointAsync();
        }
    }

    /// <summary>The instance whose write-back is most due, or null (see "Background write-back").</summary>
    private InstanceCache? PickDue()
    {
        List<InstanceCache> dirty;
        lock (_lock)
        {
            _dirty.RemoveWhere(c => c.DirtyBytes == 0);
            dirty = [.. _dirty];
        }

        if (dirty.Count == 0)
        {
            return null;
        }

        // Throttled writers wait for exactly this loop, so among them it shares by weight (the
        // biggest first on a tie); the other reasons are memory pressure and age, not shares.
        return _turns.Next(dirty.Where(c => c.HasThrottledWriters).OrderByDescending(c => c.DirtyBytes))
            ?? dirty.Where(c => c.DirtyBytes >= Options.BackgroundRatio * Options.InstanceDirtyLimit).MaxBy(c => c.DirtyBytes)
            ?? (DirtyBytes >= Options.BackgroundRatio * Options.GlobalDirtyLimit ? dirty.MaxBy(c => c.DirtyBytes) : null)
            ?? dirty.Find(c => c.DirtyOlderThan(Options.MaxDirtyAge));
    }

    private Task YieldToFlushesAsync()
    {
        Task idle;
        lock (_lock)
        {
            idle = _noFlush.Task;
        }

        return idle.IsCompleted ? Task.CompletedTask : Task.WhenAny(idle, Task.Delay(FlushYield));
    }

    private async Task StopWriterAsync()
    {
        lock (_lock)
        {
            _stopped = true;
        }

        await _stop.CancelAsync();
        await _writer;
    }

    private List<InstanceCache> Snapshot()
    {
        lock (_lock)
        {
            return [.. _caches.Values];
        }
    }

    private static TaskCompletionSource Completed()
    {
        var done = new TaskCompletionSource();
        done.SetResult();
        return done;
    }

    private sealed class FlushScope(WriteBackCache owner) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0)
            {
                owner.EndFlush();
            }
        }
    }
}

/// <summary>One open instance as the cache sees it.</summary>
public sealed record CachedInstance(string Name, long DirtyBytes, InstanceCounters Counters, InstanceQos Qos);
