using System.Buffers;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// One instance served as a disk: its upper blocks in the shared store over its read-only
/// base image, at byte granularity.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>Reads</b> resolve each block: upper (from the store), else the base (past the base's end,
/// or with no base, zeros), or zeros where the instance zeroed or trimmed.
/// </para>
/// <para>
/// <b>Writes</b> are whole blocks to the store. A write that starts or ends inside a block reads
/// that block's current view first and merges (read-modify-write), under a range lock over its
/// blocks so that no other write to them can slip in between and be lost. Every write takes
/// the lock, so two writes to a block are always one after the other.
/// </para>
/// <para>
/// <b>Durability.</b> Data reaches the store durably before the write completes (write-through;
/// the write-back cache comes later), but the instance's mapping to it is durable only after
/// a commit: <see cref="FlushAsync"/> and FUA commit this instance's changes and nobody else's.
/// One commit covers writes from every connection to the instance (multi-conn).
/// </para>
/// <para>
/// <b>Trim and zeroing</b> turn whole blocks into "reads as zeros" entries, freeing their upper
/// blocks; partial blocks at the edges are written with zeros. With NoHole the range is
/// written with zero blocks instead, keeping it allocated; that is never fast, so FastZero
/// with NoHole fails with <see cref="ExportError.NotSupported"/>.
/// </para>
/// </remarks>
public sealed class InstanceExport : ILayeredExport
{
    private const int Block = UpperStore.BlockSize;
    private readonly UpperStore _store;
    private readonly StoreInstance _instance;
    private readonly BaseImage? _base;
    private readonly BlockRangeLock _writes = new();
    private bool _disposed;

    public InstanceExport(UpperStore store, StoreInstance instance, BaseImage? baseImage)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _instance = instance ?? throw new ArgumentNullException(nameof(instance));
        _base = baseImage;
    }

    /// <summary>Opens an instance for serving: its base image is checked to be the one it was made on.</summary>
    public static async Task<InstanceExport> OpenAsync(UpperStore store, StoreInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        var baseImage = instance.Definition.Base is { } identity ? await BaseImage.OpenAsync(identity) : null;
        return new InstanceExport(store, instance, baseImage);
    }

    public long Size => _instance.Definition.VirtualSize;

    public ExportCapabilities Capabilities =>
        ExportCapabilities.Flush | ExportCapabilities.Trim | ExportCapabilities.FastZero |
        ExportCapabilities.Cache | ExportCapabilities.MultiConn;

    public string Description => _base is null ? "instance over zeros" : $"instance of {_base.Path}";

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (first, count) = BlocksOf(offset, buffer.Length);
        if (offset % Block == 0 && buffer.Length % Block == 0)
        {
            await ReadBlocksAsync(first, buffer);
            return;
        }

        byte[] whole = ArrayPool<byte>.Shared.Rent((int)(count * Block));
        try
        {
            await ReadBlocksAsync(first, whole.AsMemory(0, (int)(count * Block)));
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
        var (first, count) = BlocksOf(offset, data.Length);
        using (await _writes.AcquireAsync(first, first + count - 1))
        {
            if (offset % Block == 0 && data.Length % Block == 0)
            {
                await WriteBlocksAsync(first, data);
            }
            else
            {
                await MergeAsync(first, count, whole => data.Span.CopyTo(whole.Span[(int)(offset - (first * Block))..]));
            }
        }

        await CommitIfAsync(flags.HasFlag(WriteFlags.Fua));
    }

    public async ValueTask FlushAsync()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await _store.CommitAsync(_instance);
    }

    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) =>
        ZeroAsync(offset, length, flags.HasFlag(WriteFlags.Fua) ? ZeroFlags.Fua : ZeroFlags.None);

    public async ValueTask ZeroAsync(long offset, long length, ZeroFlags flags)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (flags.HasFlag(ZeroFlags.NoHole) && flags.HasFlag(ZeroFlags.FastZero))
        {
            throw new ExportException(ExportError.NotSupported, "a zero that must stay allocated is written block by block, never fast");
        }

        var (first, count) = BlocksOf(offset, length);
        long last = first + count - 1;
        long end = offset + length;
        using (await _writes.AcquireAsync(first, last))
        {
            if (first == last && (offset % Block != 0 || end % Block != 0))
            {
                await ZeroPartialAsync(offset, length);
            }
            else
            {
                // Partial blocks at the edges are merged with zeros; whole blocks between them become zeros.
                long wholeFirst = first, wholeEnd = last + 1;
                if (offset % Block != 0)
                {
                    await ZeroPartialAsync(offset, ((first + 1) * Block) - offset);
                    wholeFirst++;
                }

                if (end % Block != 0)
                {
                    await ZeroPartialAsync(last * Block, end - (last * Block));
                    wholeEnd--;
                }

                if (wholeEnd > wholeFirst && flags.HasFlag(ZeroFlags.NoHole))
                {
                    await WriteZeroBlocksAsync(wholeFirst, wholeEnd - wholeFirst);
                }
                else if (wholeEnd > wholeFirst)
                {
                    _store.Zero(_instance, wholeFirst, wholeEnd - wholeFirst);
                }
            }
        }

        await CommitIfAsync(flags.HasFlag(ZeroFlags.Fua));
    }

    /// <summary>Nothing to warm: the store reads with O_DIRECT and the base through the page cache.</summary>
    public ValueTask CacheAsync(long offset, long length) => ValueTask.CompletedTask;

    public async ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var (first, count) = BlocksOf(offset, length);
        var layout = new List<MappedExtent>();
        _store.Lookup(_instance, first, count, layout);
        long position = offset, end = offset + length;
        var pieces = new List<Extent>();
        foreach (var e in layout)
        {
            long from = Math.Max(position, e.VirtualBlock * Block);
            long to = Math.Min(end, (e.VirtualBlock + e.Length) * Block);
            if (to <= from)
            {
                continue;
            }

            switch (e.Kind)
            {
                case ExtentKind.Upper:
                    pieces.Add(new Extent(to - from, ExtentState.Data));
                    break;
                case ExtentKind.Zero:
                    pieces.Add(new Extent(to - from, ExtentState.Hole | ExtentState.Zero));
                    break;
                default:
                    int before = pieces.Count;
                    await BaseAllocationAsync(from, to - from, maxExtents, pieces);
                    if (pieces.Skip(before).Sum(p => p.Length) < to - from)
                    {
                        // The base described less than asked: stop here, the rest stays undescribed.
                        Merge(pieces, maxExtents, extents);
                        return;
                    }

                    break;
            }

            position = to;
            if (pieces.Count >= maxExtents)
            {
                break;
            }
        }

        Merge(pieces, maxExtents, extents);
    }

    /// <summary>Detaches the export (its data stays in the store); later calls fail.</summary>
    public ValueTask GetLayersAsync(long offset, long length, int maxExtents, List<LayerExtent> extents)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(extents);
        var (first, count) = BlocksOf(offset, length);
        var layout = new List<MappedExtent>();
        _store.Lookup(_instance, first, count, layout);
        long end = offset + length, baseEnd = _base?.Size ?? 0;
        int start = extents.Count;
        bool full = false;
        foreach (var e in layout)
        {
            long from = Math.Max(offset, e.VirtualBlock * Block);
            long to = Math.Min(end, (e.VirtualBlock + e.Length) * Block);
            // A base range may run past the base's end, where it reads as zeros.
            long split = e.Kind == ExtentKind.Base ? Math.Clamp(baseEnd, from, to) : to;
            Append(from, split, e.Kind switch { ExtentKind.Upper => Layer.Upper, ExtentKind.Zero => Layer.Zero, _ => Layer.Base });
            Append(split, to, Layer.Zero);
        }

        return ValueTask.CompletedTask;

        // Once one piece does not fit, nothing after it may be described: extents are consecutive.
        void Append(long from, long to, Layer layer)
        {
            if (to <= from || full)
            {
                return;
            }

            if (extents.Count > start && extents[^1].Layer == layer)
            {
                extents[^1] = extents[^1] with { Length = extents[^1].Length + (to - from) };
            }
            else if (extents.Count - start < maxExtents)
            {
                extents.Add(new LayerExtent(to - from, layer));
            }
            else
            {
                full = true;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        if (_base is not null)
        {
            await _base.DisposeAsync();
        }
    }

    private async ValueTask BaseAllocationAsync(long offset, long length, int maxExtents, List<Extent> pieces)
    {
        if (_base is null)
        {
            pieces.Add(new Extent(length, ExtentState.Hole | ExtentState.Zero));
            return;
        }

        // Base data is not in this instance's upper layer, but it is data: reporting it as a
        // hole would tell copying tools to skip it.
        await _base.GetAllocationAsync(offset, length, maxExtents, pieces);
    }

    /// <summary>Appends the pieces to what the list already holds, merging equal neighbours among them.</summary>
    private static void Merge(List<Extent> pieces, int maxExtents, List<Extent> extents)
    {
        int start = extents.Count;
        foreach (var piece in pieces)
        {
            if (extents.Count > start && extents[^1].State == piece.State)
            {
                extents[^1] = extents[^1] with { Length = extents[^1].Length + piece.Length };
            }
            else if (extents.Count - start < maxExtents)
            {
                extents.Add(piece);
            }
            else
            {
                return;
            }
        }
    }

    private async ValueTask ReadBlocksAsync(long first, Memory<byte> destination)
    {
        var layout = new List<MappedExtent>();
        await _store.ReadAsync(_instance, first, destination, layout);
        foreach (var e in layout.Where(e => e.Kind != ExtentKind.Upper))
        {
            var part = destination.Slice((int)((e.VirtualBlock - first) * Block), (int)(e.Length * Block));
            if (e.Kind == ExtentKind.Base && _base is not null)
            {
                await _base.ReadAsync(e.VirtualBlock * Block, part);
            }
            else
            {
                part.Span.Clear(); // zeroed, or no base
            }
        }
    }

    private async ValueTask WriteBlocksAsync(long first, ReadOnlyMemory<byte> data)
    {
        try
        {
            await _store.WriteAsync(_instance, first, data);
        }
        catch (StoreFullException e)
        {
            throw new ExportException(ExportError.NoSpace, e.Message, e);
        }
    }

    /// <summary>Read-modify-write of whole blocks [first, first+count): the caller holds their range lock.</summary>
    private async ValueTask MergeAsync(long first, long count, Action<Memory<byte>> change)
    {
        int bytes = (int)(count * Block);
        byte[] whole = ArrayPool<byte>.Shared.Rent(bytes);
        try
        {
            var memory = whole.AsMemory(0, bytes);
            await ReadBlocksAsync(first, memory);
            change(memory);
            await WriteBlocksAsync(first, memory);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(whole);
        }
    }

    private ValueTask ZeroPartialAsync(long offset, long length)
    {
        long first = offset / Block;
        return MergeAsync(first, 1, whole => whole.Span.Slice((int)(offset - (first * Block)), (int)length).Clear());
    }

    private async ValueTask WriteZeroBlocksAsync(long first, long count)
    {
        const int chunk = 256;
        byte[] zeros = new byte[Math.Min(count, chunk) * Block];
        for (long done = 0; done < count; done += chunk)
        {
            long n = Math.Min(chunk, count - done);
            await WriteBlocksAsync(first + done, zeros.AsMemory(0, (int)(n * Block)));
        }
    }

    private async ValueTask CommitIfAsync(bool fua)
    {
        if (fua)
        {
            await _store.CommitAsync(_instance);
        }
    }

    private static (long First, long Count) BlocksOf(long offset, long length)
    {
        long first = offset / Block;
        long last = (offset + length - 1) / Block;
        return (first, last - first + 1);
    }
}
