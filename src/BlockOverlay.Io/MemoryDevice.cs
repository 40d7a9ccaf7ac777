namespace BlockOverlay.Io;

/// <summary>
/// A device in memory, for tests: sparse, so a multi-GiB device costs only the blocks written.
/// </summary>
/// <remarks>
/// <para><b>States.</b> Each 4 KiB block is either absent (reads as zeros) or held in its own
/// array. A block whose content becomes all zeros is dropped again, so zero-filling a device
/// costs nothing.</para>
/// <para><b>Invariants.</b> Only blocks inside <see cref="Size"/> exist. Requests are checked
/// exactly as <see cref="FileDevice"/> checks them (alignment of offset, length and buffer
/// address; range), so a bug that O_DIRECT would reject is caught here too.</para>
/// <para><b>Locking.</b> One lock over the block table; every read and write copies under it,
/// so each call is atomic with respect to every other. Calls complete synchronously.</para>
/// <para><b>Durability.</b> Memory loses nothing by itself: <c>durable</c> is ignored and
/// flush does nothing. Power loss is <see cref="PowerLossDevice"/>'s job. Disposing does not
/// discard the content either (as closing a file does not delete it), so a test can reopen a
/// store on the same device after a clean shutdown.</para>
/// </remarks>
public sealed class MemoryDevice : IBlockDevice
{
    private const int BlockSize = IBlockDevice.BlockSize;

    private readonly Dictionary<long, byte[]> _blocks = [];
    private readonly Lock _lock = new();

    /// <summary>Creates an all-zero device of <paramref name="size"/> bytes, a positive multiple of the block size.</summary>
    public MemoryDevice(long size)
    {
        if (size <= 0 || size % BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"device size must be a positive multiple of {BlockSize}");
        }

        Size = size;
    }

    /// <inheritdoc/>
    public long Size { get; }

    /// <summary>Bytes of memory held by blocks that are not all zeros.</summary>
    public long AllocatedBytes
    {
        get
        {
            lock (_lock)
            {
                return (long)_blocks.Count * BlockSize;
            }
        }
    }

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        BlockAlignment.Validate(Size, offset, buffer);
        ReadUnaligned(offset, buffer.Span);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        BlockAlignment.Validate(Size, offset, data);
        WriteUnaligned(offset, data.Span);
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    /// <remarks>Each segment is copied into place, all under the lock: atomic like any write, with no gathering copy.</remarks>
    public ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        BlockAlignment.ValidateGather(Size, offset, segments.Span);
        lock (_lock)
        {
            foreach (var segment in segments.Span)
            {
                WriteLocked(offset, segment.Span);
                offset += segment.Length;
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync() => ValueTask.CompletedTask;

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>An independent copy of the current content: what a crash image or a backup starts from.</summary>
    public MemoryDevice Clone()
    {
        var copy = new MemoryDevice(Size);
        lock (_lock)
        {
            foreach (var (index, block) in _blocks)
            {
                copy._blocks.Add(index, (byte[])block.Clone());
            }
        }

        return copy;
    }

    /// <summary>
    /// Copies bytes at any offset and length, bypassing the alignment rules: for tests that
    /// inspect the media, and for <see cref="PowerLossDevice"/>, which works in sectors.
    /// </summary>
    public void ReadUnaligned(long offset, Span<byte> destination)
    {
        CheckRange(offset, destination.Length);
        lock (_lock)
        {
            while (!destination.IsEmpty)
            {
                var (index, within, count) = Locate(offset, destination.Length);
                var target = destination[..count];
                if (_blocks.TryGetValue(index, out var block))
                {
                    block.AsSpan(within, count).CopyTo(target);
                }
                else
                {
                    target.Clear();
                }

                destination = destination[count..];
                offset += count;
            }
        }
    }

    /// <summary>
    /// Overwrites bytes at any offset and length, bypassing the alignment rules: for tests
    /// that damage the media (flip a checksum byte), and for <see cref="PowerLossDevice"/>.
    /// </summary>
    public void WriteUnaligned(long offset, ReadOnlySpan<byte> source)
    {
        CheckRange(offset, source.Length);
        lock (_lock)
        {
            WriteLocked(offset, source);
        }
    }

    /// <summary>Copies <paramref name="source"/> to <paramref name="offset"/>, block by block; the caller holds the lock and has checked the range.</summary>
    private void WriteLocked(long offset, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            var (index, within, count) = Locate(offset, source.Length);
            WriteWithinBlock(index, within, source[..count]);
            source = source[count..];
            offset += count;
        }
    }

    private void WriteWithinBlock(long index, int within, ReadOnlySpan<byte> source)
    {
        if (!_blocks.TryGetValue(index, out var block))
        {
            if (!source.ContainsAnyExcept((byte)0))
            {
                return;
            }

            block = new byte[BlockSize];
            _blocks.Add(index, block);
        }

        source.CopyTo(block.AsSpan(within));
        if (!block.AsSpan().ContainsAnyExcept((byte)0))
        {
            _blocks.Remove(index);
        }
    }

    /// <summary>The block holding <paramref name="offset"/>, the offset within it, and how many of <paramref name="length"/> bytes fit there.</summary>
    private static (long Index, int Within, int Count) Locate(long offset, int length)
    {
        var within = (int)(offset % BlockSize);
        return (offset / BlockSize, within, Math.Min(length, BlockSize - within));
    }

    private void CheckRange(long offset, int length)
    {
        if (offset < 0 || offset > Size - length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{length} bytes at offset {offset} are outside the device ({Size} bytes)");
        }
    }
}
