using System.Buffers;
using System.Runtime.InteropServices;

namespace BlockOverlay.Io;

/// <summary>
/// A zero-filled native buffer whose address is a multiple of <see cref="IBlockDevice.BlockSize"/>,
/// usable as <see cref="Memory{T}"/>: what O_DIRECT demands of every buffer it reads into or
/// writes from. Slices at multiples of the block size stay aligned.
/// </summary>
/// <remarks>
/// The memory is outside the GC heap, so it never moves and pinning costs nothing. It has no
/// finalizer (a span over it would not keep it alive, CA2015): dispose it, once no I/O uses it.
/// </remarks>
public sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private byte* _pointer;

    /// <summary>Allocates <paramref name="length"/> zeroed bytes, a positive multiple of the block size.</summary>
    public AlignedBuffer(int length)
        : this(length, clear: true)
    {
    }

    /// <summary>Allocates <paramref name="length"/> bytes, zeroed only if <paramref name="clear"/> (a buffer that is read into whole need not be).</summary>
    internal AlignedBuffer(int length, bool clear)
    {
        if (length <= 0 || length % IBlockDevice.BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length,
                $"an aligned buffer's length must be a positive multiple of {IBlockDevice.BlockSize} bytes");
        }

        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, IBlockDevice.BlockSize);
        if (clear)
        {
            NativeMemory.Clear(_pointer, (nuint)length);
        }

        Length = length;
    }

    /// <summary>Length in bytes.</summary>
    public int Length { get; }

    /// <summary>The whole buffer as a span.</summary>
    public Span<byte> Span => GetSpan();

    /// <inheritdoc/>
    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        return new Span<byte>(_pointer, Length);
    }

    /// <inheritdoc/>
    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, Length);
        return new MemoryHandle(_pointer + elementIndex);
    }

    /// <inheritdoc/>
    /// <remarks>Native memory never moves: nothing to undo.</remarks>
    public override void Unpin()
    {
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
