using System.Runtime.InteropServices;

namespace BlockOverlay.Io.Interop;

/// <summary>
/// The Linux errno values the project names (asm-generic: the same on x86-64 and arm64), how
/// one reads, and the one way the I/O layer turns an errno into an exception: an
/// <see cref="IOException"/> whose message says which call failed, on which path, at which
/// offset, and why; and whose <see cref="Exception.HResult"/> is the errno, so the layers
/// above can answer ENOSPC as ENOSPC and everything else as EIO.
/// </summary>
public static class Errno
{
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EWOULDBLOCK = EAGAIN;
    public const int EEXIST = 17;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int ESPIPE = 29;
    public const int ENOSYS = 38;
    public const int EOPNOTSUPP = 95;
    public const int EDQUOT = 122;

    /// <summary>Builds the exception for a failed call on a device at a byte offset.</summary>
    internal static IOException Exception(string call, string path, long offset, int errno) =>
        new($"{call} on '{path}' at offset {offset} failed: {Describe(errno)}", errno);

    /// <summary>Builds the exception for a failed call that has no offset (open, lock, fdatasync).</summary>
    internal static IOException Exception(string call, string path, int errno) =>
        new($"{call} on '{path}' failed: {Describe(errno)}", errno);

    /// <summary>Re-raises a .NET I/O error with our context, keeping its errno and the original.</summary>
    internal static IOException Wrap(string call, string path, long offset, IOException inner) =>
        new($"{call} on '{path}' at offset {offset} failed: {inner.Message}", inner) { HResult = inner.HResult };

    /// <summary>"No space left on device (errno 28)".</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
