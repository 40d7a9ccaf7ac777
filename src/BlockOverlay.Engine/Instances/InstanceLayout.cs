using BlockOverlay.Engine.Cache;
using BlockOverlay.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// What each part of an instance reads from, for block status: the store's map with the
/// cache's dirty blocks painted over it as upper data, and the base's own allocation under
/// base ranges. It reads only; the export it serves checks that it is open.
/// </summary>
internal sealed class InstanceLayout(InstanceCache cache, UpperStore store, StoreInstance instance, BaseImage? baseImage)
{
    private const int Block = UpperStore.BlockSize;
    private readonly InstanceCache _cache = cache;
    private readonly UpperStore _store = store;
    private readonly StoreInstance _instance = instance;
    private readonly BaseImage? _base = baseImage;

    /// <summary>The allocation of the range (<see cref="IExport.GetAllocationAsync"/>).</summary>
    public async ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        var (first, count) = InstanceExport.BlocksOf(offset, length);
        var layout = Layout(first, count);
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

    /// <summary>Which layer (upper data, base, zeros) each part of the range reads from; dirty blocks count as upper.</summary>
    public ValueTask GetLayersAsync(long offset, long length, int maxExtents, List<LayerExtent> extents)
    {
        ArgumentNullException.ThrowIfNull(extents);
        var (first, count) = InstanceExport.BlocksOf(offset, length);
        var layout = Layout(first, count);
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

    /// <summary>
    /// The range as a reader sees it: the store's map, with blocks dirty in the cache shown as
    /// upper data (they are the instance's own, whatever the store holds under them).
    /// </summary>
    private List<MappedExtent> Layout(long first, long count)
    {
        // The cache first, the store after, as reads do: a block written back in between is
        // then seen in one or the other (written back, then dropped), never in neither.
        var held = _cache.HeldRuns(first, count);
        var layout = new List<MappedExtent>();
        _store.Lookup(_instance, first, count, layout);
        if (held.Count == 0)
        {
            return layout;
        }

        var painted = new List<MappedExtent>(layout.Count + (2 * held.Count));
        int h = 0;
        foreach (var e in layout)
        {
            for (long position = e.VirtualBlock; position < e.End;)
            {
                while (h < held.Count && held[h].First + held[h].Count <= position)
                {
                    h++;
                }

                bool inHeld = h < held.Count && held[h].First <= position;
                long to = inHeld ? Math.Min(e.End, held[h].First + held[h].Count)
                    : h < held.Count ? Math.Min(e.End, held[h].First) : e.End;
                painted.Add(inHeld
                    ? new MappedExtent(position, to - position, ExtentKind.Upper, 0, false)
                    : e with { VirtualBlock = position, Length = to - position, StoreBlock = e.StoreBlock + (position - e.VirtualBlock) });
                position = to;
            }
        }

        return painted;
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
}
