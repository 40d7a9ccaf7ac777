using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Qos;
using BlockOverlay.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// One instance served as a disk: its dirty blocks in the write-back cache, over its upper
/// blocks in the shared store, over its read-only base image, at byte granularity.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>Reads</b> take each block from the cache, else resolve it in the store: upper (from the
/// store), else the base (past the base's end, or with no base, zeros), or zeros where the
/// instance zeroed or trimmed.
/// </para>
/// <para>
/// <b>Writes</b> go to the cache as whole blocks and are acknowledged from there. A write that
/// starts or ends inside a block reads that block's current view first and merges
/// (read-modify-write), under a range lock over its blocks so that no other write to them can
/// slip in between and be lost. Every write and zero takes the lock, so two changes to a
/// block are always one after the other. A writer whose instance is past its dirty limit
/// waits first, before taking any lock, for its own write-back (DESIGN.md, invariant 7).
/// </para>
/// <para>
/// <b>Flush, by the instance's mode</b> (read at each flush, so it can change while served):
/// <c>isolated</c> writes back this instance's blocks dirtied before the flush arrived (durable
/// store writes to new blocks), then commits this instance's map, in that order, so a mapping
/// is durable only after its data (DESIGN.md, invariant 3), and nobody else's data moves (DESIGN.md, invariant 2).
/// <c>global</c> writes back and commits every instance. <c>volatile</c> acknowledges at once.
/// A FUA write is a write followed by that flush (DESIGN: FUA is a flush of X). All
/// connections share this export, so one flush covers writes from all of them (multi-conn).
/// </para>
/// <para>
/// <b>Trim and zeroing</b> turn whole blocks into "reads as zeros" entries, dropping their dirty
/// blocks and freeing their upper blocks in one step; partial blocks at the edges are
/// written with zeros. With NoHole the range is written with zero blocks instead, keeping it
/// allocated; that is never fast, so FastZero with NoHole fails with
/// <see cref="ExportError.NotSupported"/>.
/// </para>
/// <para>
/// <b>Nothing orphaned (DESIGN.md, invariant 9).</b> When a client disconnects, and when the export is
/// closed, the instance's dirty data is written back and committed (volatile instances:
/// written back, made durable by the store's clean close).
/// </para>
/// </remarks>
public sealed partial class InstanceExport : ILayeredExport, IRestrictedExport, IPacedExport, IDirectWriteExport
{
    private const int Block = UpperStore.BlockSize;
    private readonly WriteBackCache _owner;
    private readonly InstanceCache _cache;
    private readonly UpperStore _store;
    private readonly StoreInstance _instance;
    private readonly BaseImage? _base;
    private readonly IAsyncDisposable? _baseHold;   // the image itself, or a lease on a shared one
    private readonly BlockRangeLock _writes = new();
    private readonly InstanceLayout _layout;
    private readonly InstanceReader _reader;
    // The throttle's question, made once: a method group converted per write was an allocation per write.
    private readonly Func<InstanceCache, bool> _overLimit;
    private bool _disposed;

    /// <summary>An export of <paramref name="instance"/> that owns <paramref name="baseImage"/> (closes it when it closes).</summary>
    public InstanceExport(WriteBackCache cache, StoreInstance instance, BaseImage? baseImage)
        : this(cache, instance, baseImage, baseImage)
    {
    }

    private InstanceExport(WriteBackCache cache, StoreInstance instance, BaseImage? baseImage, IAsyncDisposable? baseHold)
    {
        _owner = cache ?? throw new ArgumentNullException(nameof(cache));
        _instance = instance ?? throw new ArgumentNullException(nameof(instance));
        _store = cache.Store;
        _base = baseImage;
        _baseHold = baseHold;
        _cache = cache.Attach(instance);
        _layout = new InstanceLayout(_cache, _store, instance, baseImage);
        _reader = new InstanceReader(_cache, _store, instance, baseImage);
        _overLimit = cache.OverLimit;
        Pacer = new RequestPacer(() => _instance.Definition.Qos, _cache.Counters, TimeProvider.System);
    }

    /// <summary>
    /// Opens an instance for serving, on its base from <paramref name="bases"/> (shared with the
    /// other instances of that base, and checked to be the one it was made on when first opened
    /// there); without <paramref name="bases"/>, on a base of its own, read from the cluster
    /// the Ceph conventions name if it is in RBD. The instance's map is not read here but at the
    /// first request that needs it (see <see cref="MapLoadedAsync"/>).
    /// </summary>
    public static async Task<InstanceExport> OpenAsync(WriteBackCache cache, StoreInstance instance, BaseImages? bases = null)
    {
        ArgumentNullException.ThrowIfNull(instance);
        if (instance.Definition.Base is not { } identity)
        {
            return new InstanceExport(cache, instance, null, null);
        }

        var lease = await (bases ?? new BaseImages()).OpenAsync(identity);
        try
        {
            return new InstanceExport(cache, instance, lease.Image, lease);
        }
        catch
        {
            await lease.DisposeAsync();
            throw;
        }
    }

    /// <summary>What this instance's flushes and write-back cost.</summary>
    public InstanceCounters Counters => _cache.Counters;

    /// <summary>Holds the instance's clients to its stored limits (read at each admission: <c>instance set</c> reaches open connections).</summary>
    public RequestPacer Pacer { get; }

    /// <summary>Bytes written by clients and not yet in the store.</summary>
    public long DirtyBytes => _cache.DirtyBytes;

    public long Size => _instance.Definition.VirtualSize;

    public ExportCapabilities Capabilities =>
        ExportCapabilities.Flush | ExportCapabilities.Trim | ExportCapabilities.FastZero |
        ExportCapabilities.Cache | ExportCapabilities.MultiConn;

    public string Description => _base is null ? "instance over zeros" : $"instance of {_base.Path}";

    /// <summary>The instance's stored rules, read at each negotiation: <c>instance set --allow</c> applies to the next connection.</summary>
    public ExportAccess Access => _instance.Definition.Access.ToExportAccess();

    public ValueTask AdmitAsync(long bytes, CancellationToken cancel) => Pacer.AdmitAsync(bytes, cancel);

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await MapLoadedAsync();
        var (first, count) = BlocksOf(offset, buffer.Length);
        if (offset % Block == 0 && buffer.Length % Block == 0)
        {
            await _reader.ReadBlocksAsync(first, buffer);
            return;
        }

        byte[] whole = ArrayPool<byte>.Shared.Rent((int)(count * Block));
        try
        {
            await _reader.ReadBlocksAsync(first, whole.AsMemory(0, (int)(count * Block)));
            whole.AsMemory((int)(offset - (first * Block)), buffer.Length).CopyTo(buffer);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(whole);
        }
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await MapLoadedAsync();
        await _cache.ThrottleAsync(_overLimit);
        var (first, count) = BlocksOf(offset, data.Length);
        using (await _writes.AcquireAsync(first, first + count - 1))
        {
            if (offset % Block == 0 && data.Length % Block == 0)
            {
                WriteToCache(first, data);
            }
            else
            {
                await MergeAsync(offset, data);
            }
        }

        await FlushIfAsync((flags & WriteFlags.Fua) != 0); // not HasFlag: unoptimized code boxes both enums
    }

    /// <summary>
    /// <see cref="WriteAsync"/> when nothing in it would wait: whole blocks, the map loaded, the
    /// instance under its dirty limit and no other change to those blocks under way. The blocks
    /// are then copied into the cache from <paramref name="data"/> before this returns.
    /// </summary>
    public bool TryWriteNow(long offset, in ReadOnlySequence<byte> data, WriteFlags flags, out ValueTask completion)
    {
        completion = default;
        if (_disposed || offset % Block != 0 || data.Length % Block != 0 || !MapLoadedAsync().IsCompletedSuccessfully || _overLimit(_cache))
        {
            return false;
        }

        var (first, count) = BlocksOf(offset, data.Length);
        using (var held = _writes.TryAcquire(first, first + count - 1))
        {
            if (held is null)
            {
                return false;
            }

            if (!_cache.TryWrite(first, data))
            {
                completion = ValueTask.FromException(AtQuota());
                return true;
            }
        }

        completion = FlushIfAsync((flags & WriteFlags.Fua) != 0);
        return true;
    }

    public async ValueTask FlushAsync()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var mode = _instance.Definition.FlushMode;
        long started = Stopwatch.GetTimestamp();
        long data = 0, meta = 0;
        try
        {
            using (_owner.BeginFlush())
            {
                switch (mode)
                {
                    case FlushMode.Isolated:
                        data = await _cache.WriteBackAsync(_cache.FlushPoint(), WriteReason.Flush, _owner.Options.FlushBatchBlocks);
                        meta = await _store.CommitAsync(_instance);
                        break;
                    case FlushMode.Global:
                        (data, meta) = await _owner.FlushEveryoneAsync();
                        break;
                    case FlushMode.Volatile:
                        break; // acknowledged without persistence, by definition of the mode
                }
            }
        }
        catch (StoreFullException e)
        {
            throw new ExportException(ExportError.NoSpace, e.Message, e);
        }
        finally
        {
            _cache.Counters.AddFlush(Stopwatch.GetElapsedTime(started), data, meta);
        }
    }

    /// <summary>A client left: write back and commit what this instance holds, so nothing waits on a client that is gone.</summary>
    public async ValueTask ClientDetachedAsync()
    {
        if (!_disposed)
        {
            await WriteBackAllAsync();
        }
    }

    /// <summary>Nothing to warm: the store reads with O_DIRECT and the base through the page cache.</summary>
    public ValueTask CacheAsync(long offset, long length) => ValueTask.CompletedTask;

    public async ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await MapLoadedAsync();
        await _layout.GetAllocationAsync(offset, length, maxExtents, extents);
    }

    /// <summary>Which layer (upper data, base, zeros) each part of the range reads from; dirty blocks count as upper.</summary>
    public async ValueTask GetLayersAsync(long offset, long length, int maxExtents, List<LayerExtent> extents)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await MapLoadedAsync();
        await _layout.GetLayersAsync(offset, length, maxExtents, extents);
    }

    /// <summary>
    /// The instance's map, read from the store on the first request that needs it rather than
    /// when the export opens: a server opens every instance's export at start, and reading
    /// every map then is what lazy maps avoid. Completed at once after that. A flush needs no
    /// map: an instance never loaded has nothing to write back or commit.
    /// </summary>
    private Task MapLoadedAsync() => _store.LoadAsync(_instance);

    /// <summary>Writes back and commits what the instance holds, then detaches it (its data stays in the store).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        // If this fails, the instance's cache stays attached: its dirty data is not dropped, and
        // the cache's own close tries again.
        await WriteBackAllAsync();
        _disposed = true;
        _owner.Detach(_cache);
        if (_baseHold is not null)
        {
            await _baseHold.DisposeAsync();
        }
    }

    /// <summary>
    /// Closes the export of an instance being deleted by <paramref name="delete"/>: its dirty
    /// data is not written back (it would only be freed) but held aside, out of reach of
    /// background write-back and global flushes, while the delete runs. If the delete fails,
    /// the export is as it was, dirty data included; if it succeeds, the data goes with the
    /// instance. The caller has ended the instance's connections.
    /// </summary>
    public async Task DeleteAsync(Func<Task> delete)
    {
        ArgumentNullException.ThrowIfNull(delete);
        ObjectDisposedException.ThrowIf(_disposed, this);
        _owner.Detach(_cache);
        try
        {
            // A write-back already on its way may still map blocks: the delete then frees them.
            await _cache.WhenNoWriteBackAsync();
            await delete();
        }
        catch
        {
            _owner.Reattach(_cache);
            throw;
        }

        _cache.Discard();
        _disposed = true;
        if (_baseHold is not null)
        {
            await _baseHold.DisposeAsync();
        }
    }

    /// <summary>
    /// Writes back every dirty block, and commits unless the instance is volatile. Nobody waits
    /// on it as on a flush, so it counts as background write-back.
    /// </summary>
    private async Task WriteBackAllAsync()
    {
        long written = await _cache.WriteBackAsync(_cache.FlushPoint(), WriteReason.Background, _owner.Options.FlushBatchBlocks);
        _cache.Counters.AddWriteBack(written);
        if (_instance.Definition.FlushMode != FlushMode.Volatile)
        {
            await _store.CommitAsync(_instance);
        }
    }

    /// <summary>
    /// Read-modify-write of the blocks under [offset, offset+data.Length): the partial blocks at
    /// the edges are read first (nothing else can change them: the caller holds their range
    /// lock), <paramref name="data"/> is copied over the whole-block image, and it goes to the
    /// cache. (No callback: a lambda capturing the write's arguments cost every write an
    /// allocation, whole blocks or not.)
    /// </summary>
    private async ValueTask MergeAsync(long offset, ReadOnlyMemory<byte> data)
    {
        long length = data.Length;
        var (first, count) = BlocksOf(offset, length);
        int bytes = (int)(count * Block);
        byte[] whole = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            var memory = whole.AsMemory(0, bytes);
            if (offset % Block != 0)
            {
                await _reader.ReadBlocksAsync(first, memory[..Block]);
            }

            if ((offset + length) % Block != 0 && (count > 1 || offset % Block == 0))
            {
                await _reader.ReadBlocksAsync(first + count - 1, memory[^Block..]);
            }

            data.Span.CopyTo(memory.Span[(int)(offset - (first * Block))..]);
            WriteToCache(first, memory);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(whole);
        }
    }

    /// <summary>
    /// Whole blocks into the cache; with a quota, a write that needs new space past it fails
    /// with ENOSPC (NBD's mapping of EDQUOT) and changes nothing. The caller holds the range lock.
    /// </summary>
    private void WriteToCache(long first, ReadOnlyMemory<byte> blocks)
    {
        if (!_cache.TryWrite(first, blocks))
        {
            throw AtQuota();
        }
    }

    private ExportException AtQuota() => new(ExportError.NoSpace,
        $"instance '{_instance.Name}' is at its quota of {new ByteSize(_instance.Definition.Quota)}");

    private async ValueTask FlushIfAsync(bool fua)
    {
        if (fua)
        {
            await FlushAsync();
        }
    }

    /// <summary>The blocks that hold any byte of the range.</summary>
    internal static (long First, long Count) BlocksOf(long offset, long length)
    {
        long first = offset / Block;
        long last = (offset + length - 1) / Block;
        return (first, last - first + 1);
    }
}
