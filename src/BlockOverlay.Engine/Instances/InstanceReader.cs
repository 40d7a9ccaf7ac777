using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Store;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// Reads an instance's whole blocks through its layers: the cache where it holds them, the rest
/// from the store's upper data, the base or zeros, as the store's map says. It reads only, and
/// allocates nothing per read; the export it serves holds the range locks and checks it is open.
/// </summary>
internal sealed class InstanceReader(InstanceCache cache, UpperStore store, StoreInstance instance, BaseImage? baseImage)
{
    private const int Block = UpperStore.BlockSize;

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadBlocksAsync(long first, Memory<byte> destination)
    {
        var scratch = ReadScratch.Rent();
        try
        {
            cache.Read(first, destination.Length / Block, destination.Span, scratch.Misses);
            foreach (var (missFirst, missCount) in scratch.Misses)
            {
                await ReadBelowCacheAsync(missFirst, destination.Slice((int)((missFirst - first) * Block), (int)(missCount * Block)),
                    scratch.Layout);
            }
        }
        finally
        {
            ReadScratch.Return(scratch);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadBelowCacheAsync(long first, Memory<byte> destination, List<MappedExtent> layout)
    {
        await store.ReadAsync(instance, first, destination, layout);
        foreach (var e in layout)
        {
            if (e.Kind == ExtentKind.Upper)
            {
                continue;
            }

            var part = destination.Slice((int)((e.VirtualBlock - first) * Block), (int)(e.Length * Block));
            if (e.Kind == ExtentKind.Base && baseImage is not null)
            {
                await baseImage.ReadAsync(e.VirtualBlock * Block, part);
            }
            else
            {
                part.Span.Clear(); // zeroed, or no base
            }
        }
    }

    /// <summary>
    /// The lists one read fills (the cache's misses, the store's layout of a miss), reused from
    /// a pool so that a read allocates none; a list a fragmented read grew is let go.
    /// </summary>
    private sealed class ReadScratch
    {
        private const int MaxKept = 64;
        private static readonly ConcurrentQueue<ReadScratch> s_free = new();

        public List<(long First, long Count)> Misses { get; } = [];

        public List<MappedExtent> Layout { get; } = [];

        public static ReadScratch Rent() => s_free.TryDequeue(out var scratch) ? scratch : new ReadScratch();

        public static void Return(ReadScratch scratch)
        {
            if (scratch.Misses.Capacity > MaxKept || scratch.Layout.Capacity > MaxKept)
            {
                return;
            }

            scratch.Misses.Clear();
            scratch.Layout.Clear();
            s_free.Enqueue(scratch);
        }
    }
}
