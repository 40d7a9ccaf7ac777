using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Data;

/// <summary>Instance data: writes redirected to fresh blocks, zeroing, reads and look-ups.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> A block of a write is allocated, written durably, then mapped (uncommitted); a
/// failed write changes nothing and its blocks go back.
/// </para>
/// <para>
/// <b>Invariants.</b> Data always goes to freshly allocated blocks and is durable (FUA) before
/// the map names it, so a mapping never names data that is not durable (DESIGN.md, invariant 3), and a
/// block's content changes only by switching its mapping, which is atomic: after a crash a block
/// reads old or new, never a torn mix. Blocks a durable mapping still names are freed only after
/// the commit that drops that mapping; blocks never durably mapped are freed at once
/// (DESIGN.md, invariant 4). Reads hold a ticket (<see cref="ReadQuarantine"/>) while they look up and read.
/// </para>
/// <para>
/// <b>Locking.</b> None of its own: the instance's gate around map changes, the space and
/// quarantine locks around allocation; none is held across I/O.
/// </para>
/// <para>
/// <b>Maps.</b> A write or a read loads the instance's map if it is not loaded yet (see
/// <see cref="StoreInstance.LoadAsync"/>); a zeroing or a look-up, which cannot wait, needs it
/// loaded already (the engine loads it when it attaches the instance).
/// </para>
/// <para><b>Durability.</b> Data durable when written; mappings only at the instance's next commit.</para>
/// </remarks>
internal sealed class DataPath(IBlockDevice device, StoreSpace space, ReadQuarantine quarantine, Checkpointer lifetime,
    StoreCounters counters)
{
    private const int BlockSize = Superblock.Size;

    /// <summary>See <see cref="UpperStore.WriteBlocksAsync(StoreInstance, IReadOnlyList{ValueTuple{long, long}}, ReadOnlyMemory{byte}, WriteReason)"/>.</summary>
    public async ValueTask WriteBlocksAsync(StoreInstance instance, IReadOnlyList<(long VirtualBlock, long Length)> runs,
        ReadOnlyMemory<byte> data, WriteReason reason)
    {
        AlignedBuffer? copy = null;
        try
        {
            // O_DIRECT wants aligned memory: other data is copied once (a length that is not
            // whole blocks is refused below, as it is).
            bool aligned = MemoryMarshal.TryGetMemoryManager(data, out AlignedBuffer? _, out int start, out _) && start % BlockSize == 0;
            if (!aligned && data.Length > 0 && data.Length % BlockSize == 0)
            {
                copy = new AlignedBuffer(data.Length);
                data.CopyTo(copy.Memory);
                data = copy.Memory;
            }

            await WriteBlocksAsync(instance, runs, new[] { data }, reason);
        }
        finally
        {
            ((IDisposable?)copy)?.Dispose();
        }
    }

    /// <summary>See <see cref="UpperStore.WriteBlocksAsync(StoreInstance, IReadOnlyList{ValueTuple{long, long}}, ReadOnlyMemory{ReadOnlyMemory{byte}}, WriteReason)"/>.</summary>
    public async ValueTask WriteBlocksAsync(StoreInstance instance, IReadOnlyList<(long VirtualBlock, long Length)> runs,
        ReadOnlyMemory<ReadOnlyMemory<byte>> data, WriteReason reason)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(runs);
        if (!instance.IsLoaded)
        {
            await instance.LoadAsync(device);
        }

        if (reason is not (WriteReason.Flush or WriteReason.Background))
        {
            throw new ArgumentException($"instance data is written for a flush or in the background, not for {reason}", nameof(reason));
        }

        long count = 0;
        foreach (var (virtualBlock, length) in runs)
        {
            count += CheckRange(instance, virtualBlock, length * BlockSize);
        }

        long bytes = 0;
        foreach (var segment in data.Span)
        {
            bytes += segment.Length;
        }

        if (count * BlockSize != bytes)
        {
            throw new ArgumentException($"{bytes} bytes of data for {count} blocks");
        }

        var placed = space.Allocate(count);
        try
        {
            await WritePlacedAsync(placed, data);
        }
        catch
        {
            quarantine.Free(placed);
            throw;
        }

        counters.Add(reason, bytes);
        var freeNow = new List<(long, long)>();
        bool mapped = instance.MapWritten(Pair(runs, placed), freeNow);
        quarantine.Free(mapped ? freeNow : placed);
        if (!mapped)
        {
            throw new InstanceException($"instance '{instance.Name}' was deleted");
        }
    }

    /// <summary>Makes whole blocks read as zeros, releasing their upper blocks (not yet committed).</summary>
    public void Zero(StoreInstance instance, long virtualBlock, long count)
    {
        ArgumentNullException.ThrowIfNull(instance);
        CheckRange(instance, virtualBlock, count * BlockSize);
        var freeNow = new List<(long, long)>();
        instance.MapZero(virtualBlock, count, freeNow);
        quarantine.Free(freeNow);
    }

    /// <summary>See <see cref="UpperStore.ReadAsync"/>.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(StoreInstance instance, long virtualBlock, Memory<byte> destination, List<MappedExtent> layout)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(layout);
        long count = CheckRange(instance, virtualBlock, destination.Length);
        if (!instance.IsLoaded)
        {
            await instance.LoadAsync(device);
        }

        long ticket = quarantine.BeginRead();
        try
        {
            layout.Clear();
            Lookup(instance, virtualBlock, count, layout);
            foreach (var extent in layout)
            {
                if (extent.Kind != ExtentKind.Upper)
                {
                    continue;
                }

                // O_DIRECT wants an aligned buffer, and the destination is the caller's: read
                // into a pooled one (nothing allocated or zeroed per extent), copy it out.
                int bytes = (int)(extent.Length * BlockSize);
                var buffer = AlignedBufferPool.Shared.Rent(bytes);
                try
                {
                    var read = buffer.Memory[..bytes];
                    await device.ReadAsync(extent.StoreBlock * BlockSize, read);
                    read.CopyTo(destination[(int)((extent.VirtualBlock - virtualBlock) * BlockSize)..]);
                }
                finally
                {
                    AlignedBufferPool.Shared.Return(buffer);
                }
            }
        }
        finally
        {
            quarantine.EndRead(ticket);
        }
    }

    /// <summary>Describes a range of an instance without reading it (block status).</summary>
    public void Lookup(StoreInstance instance, long virtualBlock, long count, List<MappedExtent> layout)
    {
        ArgumentNullException.ThrowIfNull(instance);
        lifetime.ThrowIfClosed();
        instance.Lookup(virtualBlock, count, layout);
    }

    /// <summary>
    /// Writes the segments, one after another, to the allocated runs: one durable gather write
    /// per run, from the segments' own memory (a segment that spans two runs is split).
    /// </summary>
    private async ValueTask WritePlacedAsync(List<(long Start, long Length)> placed, ReadOnlyMemory<ReadOnlyMemory<byte>> data)
    {
        // A run takes the rest of one segment, whole ones, then the start of another: never
        // more pieces than segments plus runs, and each run reuses the array from its start.
        var pieces = ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(data.Length + placed.Count);
        try
        {
            int segment = 0;
            int used = 0; // bytes of data[segment] already written
            foreach (var (storeStart, length) in placed)
            {
                int count = 0;
                for (long need = length * BlockSize; need > 0; count++)
                {
                    var rest = data.Span[segment][used..];
                    int take = (int)Math.Min(need, rest.Length);
                    pieces[count] = rest[..take];
                    need -= take;
                    used += take;
                    if (used == data.Span[segment].Length)
                    {
                        (segment, used) = (segment + 1, 0);
                    }
                }

                await device.WriteGatherAsync(storeStart * BlockSize, pieces.AsMemory(0, count), durable: true);
            }
        }
        finally
        {
            ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(pieces, clearArray: true);
        }
    }

    /// <summary>Lines virtual runs up against store runs: pieces that are contiguous on both sides.</summary>
    private static IEnumerable<(long VirtualBlock, long StoreBlock, long Length)> Pair(
        IReadOnlyList<(long VirtualBlock, long Length)> virtualRuns, List<(long Start, long Length)> storeRuns)
    {
        int s = 0;
        long storeUsed = 0;
        foreach (var (virtualBlock, length) in virtualRuns)
        {
            long done = 0;
            while (done < length)
            {
                long piece = Math.Min(length - done, storeRuns[s].Length - storeUsed);
                yield return (virtualBlock + done, storeRuns[s].Start + storeUsed, piece);
                done += piece;
                storeUsed += piece;
                if (storeUsed == storeRuns[s].Length)
                {
                    s++;
                    storeUsed = 0;
                }
            }
        }
    }

    private static long CheckRange(StoreInstance instance, long virtualBlock, long bytes)
    {
        if (bytes <= 0 || bytes % BlockSize != 0)
        {
            throw new ArgumentException($"{bytes} bytes is not a positive whole number of {BlockSize}-byte blocks");
        }

        long count = bytes / BlockSize;
        return virtualBlock < 0 || virtualBlock > instance.Blocks - count
            ? throw new ArgumentOutOfRangeException(nameof(virtualBlock), $"blocks {virtualBlock}+{count} are outside instance '{instance.Name}' ({instance.Blocks} blocks)")
            : count;
    }
}
