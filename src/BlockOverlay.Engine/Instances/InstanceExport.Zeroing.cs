using System.Buffers;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Instances;

/// <summary>Trim and zeroing of an instance (see "Trim and zeroing" in <see cref="InstanceExport"/>'s remarks).</summary>
public sealed partial class InstanceExport
{
    /// <summary>
    /// A trim zeroes like <see cref="ZeroAsync"/>, but as the hint it is: the NBD spec lets a
    /// trimmed range read as anything until it is written, so a partial edge block that would
    /// need new space past the quota is left as it was instead of failing the trim (a guest at
    /// its quota trims to get room back).
    /// </summary>
    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) =>
        ZeroRangeAsync(offset, length, flags.HasFlag(WriteFlags.Fua) ? ZeroFlags.Fua : ZeroFlags.None, hint: true);

    public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags) => ZeroRangeAsync(offset, length, flags, hint: false);

    private async ValueTask ZeroRangeAsync(long offset, long length, ZeroFlags flags, bool hint)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (flags.HasFlag(ZeroFlags.NoHole) && flags.HasFlag(ZeroFlags.FastZero))
        {
            throw new ExportException(ExportError.NotSupported, "a zero that must stay allocated is written block by block, never fast");
        }

        await MapLoadedAsync();

        var (first, count) = BlocksOf(offset, length);
        long last = first + count - 1;
        long end = offset + length;
        using (await _writes.AcquireAsync(first, last))
        {
            // Whole blocks first: dropping them gives room back under a quota before the edges
            // may need some. Partial blocks at the edges are merged with zeros.
            long wholeFirst = offset % Block == 0 ? first : first + 1;
            long wholeEnd = end % Block == 0 ? last + 1 : last;
            if (wholeEnd > wholeFirst && flags.HasFlag(ZeroFlags.NoHole))
            {
                await WriteZeroBlocksAsync(wholeFirst, wholeEnd - wholeFirst);
            }
            else if (wholeEnd > wholeFirst)
            {
                await _cache.ZeroAsync(wholeFirst, wholeEnd - wholeFirst);
            }

            if (offset % Block != 0)
            {
                await ZeroEdgeAsync(offset, Math.Min(end, (first + 1) * Block) - offset, hint);
            }

            if (end % Block != 0 && (last != first || offset % Block == 0))
            {
                await ZeroEdgeAsync(last * Block, end - (last * Block), hint);
            }
        }

        await FlushIfAsync(flags.HasFlag(ZeroFlags.Fua));
    }

    /// <summary>
    /// Zeroes part of one block: nothing is written when that part reads as zeros already (so
    /// zeroing over a hole or a zeroed range takes no space); for a trim, a quota refusal
    /// leaves the block as it was (see <see cref="TrimAsync"/>).
    /// </summary>
    private async ValueTask ZeroEdgeAsync(long offset, long length, bool hint)
    {
        long block = offset / Block;
        byte[] whole = ArrayPool<byte>.Shared.Rent(Block);
        try
        {
            var memory = whole.AsMemory(0, Block);
            await _reader.ReadBlocksAsync(block, memory);
            var part = memory.Span.Slice((int)(offset % Block), (int)length);
            if (!part.ContainsAnyExcept((byte)0))
            {
                return;
            }

            part.Clear();
            // At the quota a trim, being a hint, leaves the block with its data; a zero fails.
            if (!_cache.TryWrite(block, memory) && !hint)
            {
                throw AtQuota();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(whole);
        }
    }

    /// <summary>Writes zero blocks through the cache, a chunk at a time so a huge range is throttled like any writer.</summary>
    private async ValueTask WriteZeroBlocksAsync(long first, long count)
    {
        const int chunk = 256;
        byte[] zeros = new byte[Math.Min(count, chunk) * Block];
        for (long done = 0; done < count; done += chunk)
        {
            await _cache.ThrottleAsync(_overLimit);
            long n = Math.Min(chunk, count - done);
            WriteToCache(first + done, zeros.AsMemory(0, (int)(n * Block)));
        }
    }
}
