using System.Runtime.InteropServices;

namespace BlockOverlay.LibNbd;

/// <summary>A libnbd call failed. <see cref="Errno"/> is what the server replied (for a
/// command the server rejected) or what libnbd decided locally (0 if libnbd gave none).</summary>
public sealed class NbdException : Exception
{
    public NbdException()
    {
    }

    public NbdException(string message) : base(message)
    {
    }

    public NbdException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public NbdException(string message, int errno) : base(message)
    {
        Errno = errno;
    }

    public int Errno { get; }

    /// <summary>Reads libnbd's thread-local error; call it right after the failing call, on
    /// the same thread, before any other libnbd call overwrites it.</summary>
    internal static unsafe NbdException FromLastError()
    {
        var errno = LibNbdNative.nbd_get_errno();
        var message = Marshal.PtrToStringUTF8((IntPtr)LibNbdNative.nbd_get_error())
            ?? "libnbd call failed without a message";
        return new NbdException(message, errno);
    }
}
