using System.Buffers;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>
/// A gather write's segments as struct iovec, the same way for both backends of
/// <see cref="FileDevice"/>: pinned, merged where one segment ends exactly where the next
/// begins (slices of one buffer in order cost one entry, not one each), written at most
/// <see cref="Max"/> at a time, and advanced past what a short write took.
/// </summary>
internal static unsafe class IoVecs
{
    /// <summary>IOV_MAX on Linux: the most iovecs one pwritev2 or IORING_OP_WRITEV takes (more is EINVAL).</summary>
    public const int Max = 1024;

    /// <summary>
    /// Pins every segment, adding its handle to <paramref name="pins"/> (the caller disposes them
    /// once the kernel is done), and describes the segments in <paramref name="iovecs"/>, which
    /// has room for one per segment. Returns how many iovecs that took after merging.
    /// </summary>
    public static int Pin(ReadOnlySpan<ReadOnlyMemory<byte>> segments, List<MemoryHandle> pins, LibC.IoVec* iovecs)
    {
        var count = 0;
        foreach (var segment in segments)
        {
            var pin = segment.Pin();
            pins.Add(pin);
            var start = (byte*)pin.Pointer;
            if (count > 0 && (byte*)iovecs[count - 1].Base + iovecs[count - 1].Length == start)
            {
                iovecs[count - 1].Length += (nuint)segment.Length;
            }
            else
            {
                iovecs[count++] = new LibC.IoVec { Base = start, Length = (nuint)segment.Length };
            }
        }

        return count;
    }

    /// <summary>
    /// Takes <paramref name="written"/> bytes off the front of <paramref name="count"/> iovecs:
    /// whole ones are skipped, one written in part is shortened in place (a short write may end
    /// inside an iovec). Returns how many were skipped whole.
    /// </summary>
    public static int Advance(LibC.IoVec* iovecs, int count, long written)
    {
        var skipped = 0;
        while (skipped < count && written >= (long)iovecs[skipped].Length)
        {
            written -= (long)iovecs[skipped].Length;
            skipped++;
        }

        if (written > 0 && skipped < count)
        {
            iovecs[skipped].Base = (byte*)iovecs[skipped].Base + written;
            iovecs[skipped].Length -= (nuint)written;
        }

        return skipped;
    }
}
