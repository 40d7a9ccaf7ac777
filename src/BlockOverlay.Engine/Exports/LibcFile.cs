using System.Runtime.InteropServices;
using BlockOverlay.Exports;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Engine.Exports;

/// <summary>
/// The file export's use of the libc file calls .NET does not expose (bound once, in
/// <see cref="LibC"/>): fdatasync, fallocate, posix_fadvise and lseek with SEEK_DATA / SEEK_HOLE.
/// </summary>
/// <remarks>
/// Each wrapper returns the errno (0 on success) instead of throwing, because callers treat
/// some errnos as answers (EOPNOTSUPP: the file system cannot; ENXIO: no more data), and
/// <see cref="Failure"/> turns the rest into exceptions that say what failed.
/// </remarks>
internal static class LibcFile
{
    /// <summary>fdatasync(2), retried on EINTR. Returns 0 or the errno.</summary>
    public static int DataSync(SafeFileHandle fd)
    {
        while (true)
        {
            if (LibC.fdatasync(fd) == 0)
            {
                return 0;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                return errno;
            }
        }
    }

    /// <summary>fallocate(2), retried on EINTR. Returns 0 or the errno.</summary>
    public static int Allocate(SafeFileHandle fd, int mode, long offset, long length)
    {
        while (true)
        {
            if (LibC.fallocate(fd, mode, offset, length) == 0)
            {
                return 0;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                return errno;
            }
        }
    }

    /// <summary>posix_fadvise(2). Returns 0 or the error number.</summary>
    public static int Advise(SafeFileHandle fd, long offset, long length, int advice) =>
        LibC.posix_fadvise(fd, offset, length, advice);

    /// <summary>lseek(2). Returns the resulting offset, or -1 with the errno in <paramref name="errno"/>.</summary>
    /// <remarks>
    /// Moves the descriptor's shared file position, which nothing else here uses: all data
    /// I/O is positional (pread/pwrite), so concurrent seeks are harmless.
    /// </remarks>
    public static long Seek(SafeFileHandle fd, long offset, int whence, out int errno)
    {
        long result = LibC.lseek(fd, offset, whence);
        errno = result < 0 ? Marshal.GetLastPInvokeError() : 0;
        return result;
    }

    /// <summary>
    /// The exception for a failed call: <see cref="ExportException"/> with
    /// <see cref="ExportError.NoSpace"/> for ENOSPC, EDQUOT and EFBIG (the client can act on
    /// those), otherwise an <see cref="IOException"/> whose HResult is the errno.
    /// </summary>
    public static Exception Failure(int errno, string what, string path)
    {
        string message = $"{what} failed on '{path}': {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
        return errno is Errno.ENOSPC or Errno.EDQUOT or Errno.EFBIG
            ? new ExportException(ExportError.NoSpace, message)
            : new IOException(message, errno);
    }
}
