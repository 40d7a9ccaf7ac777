using System.Runtime.InteropServices;

namespace BlockOverlay.LibNbd;

/// <summary>Unmanaged, aligned memory for aio commands: libnbd keeps the pointer until the
/// command completes, so the buffer must not move (no GC) and must outlive the command.
/// There is deliberately no finalizer: freeing a buffer that a forgotten in-flight command
/// still targets would be a use-after-free; a leak is the safer failure.</summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    private byte* address;

    /// <param name="length">Size in bytes.</param>
    /// <param name="alignment">In bytes, a power of two; 4096 suits O_DIRECT servers.</param>
    public NativeBuffer(int length, int alignment = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        address = (byte*)NativeMemory.AlignedAlloc((nuint)length, (nuint)alignment);
        Length = length;
    }

    public int Length { get; }

    public IntPtr Address => (IntPtr)Data;

    public Span<byte> Span => new(Data, Length);

    internal byte* Data
    {
        get
        {
            ObjectDisposedException.ThrowIf(address == null, this);
            return address;
        }
    }

    /// <summary>Only after every aio command that uses this buffer has completed.</summary>
    public void Dispose()
    {
        NativeMemory.AlignedFree(address);
        address = null;
    }
}
