using System.Runtime.InteropServices;

namespace BlockOverlay.Io;

/// <summary>
/// The Linux errno values this layer names, and the one way it turns an errno into an
/// exception: an <see cref="IOException"/> whose message says which call failed, on which
/// path, at which offset, and why; and whose <see cref="Exception.HResult"/> is the errno,
/// so the layers above can answer ENOSPC as ENOSPC and everything else as EIO.
/// </summary>
internal static class Errno
{
    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EAGAIN = 11;
    public const int EEXIST = 17;
    public const int EINVAL = 22;
    public const int ENOSPC = 28;

    /// <summary>Builds the exception for a failed call on a device at a byte offset.</summary>
    public static IOException Exception(string call, string path, long offset, int errno) =>
        new($"{call} on '{path}' at offset {offset} failed: {Describe(errno)}", errno);

    /// <summary>Builds the exception for a failed call that has no offset (open, lock, fdatasync).</summary>
    public static IOException Exception(string call, string path, int errno) =>
        new($"{call} on '{path}' failed: {Describe(errno)}", errno);

    /// <summary>Re-raises a .NET I/O error with our context, keeping its errno and the original.</summary>
    public static IOException Wrap(string call, string path, long offset, IOException inner) =>
        new($"{call} on '{path}' at offset {offset} failed: {inner.Message}", inner) { HResult = inner.HResult };

    /// <summary>"No space left on device (errno 28)".</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
