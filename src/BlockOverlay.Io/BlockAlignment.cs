namespace BlockOverlay.Io;

/// <summary>
/// The one argument check every device and decorator runs before any I/O, so that a
/// misaligned or out-of-range call fails the same way on memory as on O_DIRECT, where the
/// kernel would answer EINVAL (or worse, succeed on one file system and fail on another).
/// </summary>
internal static class BlockAlignment
{
    /// <summary>Throws <see cref="ArgumentException"/> unless the request fits the contract of <see cref="IBlockDevice"/>.</summary>
    public static void Validate(long deviceSize, long offset, ReadOnlyMemory<byte> buffer)
    {
        const int block = IBlockDevice.BlockSize;
        if (offset < 0 || offset % block != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset must be a non-negative multiple of {block}");
        }

        if (buffer.Length == 0 || buffer.Length % block != 0)
        {
            throw new ArgumentException($"length {buffer.Length} is not a positive multiple of {block}", nameof(buffer));
        }

        if (offset > deviceSize - buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{buffer.Length} bytes at offset {offset} run past the end of the device ({deviceSize} bytes)");
        }

        if (!IsAddressAligned(buffer))
        {
            throw new ArgumentException($"buffer address is not a multiple of {block}; use {nameof(AlignedBuffer)}", nameof(buffer));
        }
    }

    /// <summary>
    /// <see cref="Validate"/> for a gather write: every segment on its own, and the whole range
    /// they make together. Returns their total length.
    /// </summary>
    public static int ValidateGather(long deviceSize, long offset, ReadOnlySpan<ReadOnlyMemory<byte>> segments)
    {
        if (segments.IsEmpty)
        {
            throw new ArgumentException("a gather write needs at least one segment", nameof(segments));
        }

        long total = 0;
        foreach (var segment in segments)
        {
            if (segment.Length == 0 || segment.Length % IBlockDevice.BlockSize != 0)
            {
                throw new ArgumentException($"segment length {segment.Length} is not a positive multiple of {IBlockDevice.BlockSize}", nameof(segments));
            }

            if (!IsAddressAligned(segment))
            {
                throw new ArgumentException($"a segment's address is not a multiple of {IBlockDevice.BlockSize}; use {nameof(AlignedBuffer)}", nameof(segments));
            }

            total += segment.Length;
        }

        if (total > int.MaxValue)
        {
            throw new ArgumentException($"a gather write of {total} bytes is larger than one write may be ({int.MaxValue} bytes)", nameof(segments));
        }

        if (offset < 0 || offset % IBlockDevice.BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset must be a non-negative multiple of {IBlockDevice.BlockSize}");
        }

        if (offset > deviceSize - total)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"{total} bytes at offset {offset} run past the end of the device ({deviceSize} bytes)");
        }

        return (int)total;
    }

    private static unsafe bool IsAddressAligned(ReadOnlyMemory<byte> buffer)
    {
        // Pinning an AlignedBuffer slice is free; a managed array gets pinned only for this check.
        using var pin = buffer.Pin();
        return (nuint)pin.Pointer % IBlockDevice.BlockSize == 0;
    }
}
