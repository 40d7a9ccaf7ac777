using System.Runtime.InteropServices;
using BlockOverlay.Exports;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Engine.Exports;

/// <summary>
/// The few libc file calls .NET does not expose: fdatasync, fallocate, posix_fadvise and
/// lseek with SEEK_DATA / SEEK_HOLE. Linux only; <c>off_t</c> is 64-bit on every platform
/// .NET supports there, so offsets are <see cref="long"/>.
/// </summary>
/// <remarks>
/// Each wrapper returns the errno (0 on success) instead of throwing, because callers treat
/// some errnos as answers (EOPNOTSUPP: the file system cannot; ENXIO: no more data), and
/// <see cref="Failure"/> turns the rest into exceptions that say what failed.
/// </remarks>
internal static partial class LibcFile
{
    private const string Libc = "libc";

    public const int EINTR = 4;
    public const int EIO = 5;
    public const int ENXIO = 6;
    public const int EBADF = 9;
    public const int ENODEV = 19;
    public const int EINVAL = 22;
    public const int EFBIG = 27;
    public const int ENOSPC = 28;
    public const int ESPIPE = 29;
    public const int ENOSYS = 38;
    public const int EOPNOTSUPP = 95;
    public const int EDQUOT = 122;

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    public const int POSIX_FADV_WILLNEED = 3;

    public const int SEEK_END = 2;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    [LibraryImport(Libc, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);

    [LibraryImport(Libc, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int fallocate(SafeFileHandle fd, int mode, long offset, long len);

    // posix_fadvise returns the error number; it does not set errno.
    [LibraryImport(Libc, EntryPoint = "posix_fadvise")]
    private static partial int posix_fadvise(SafeFileHandle fd, long offset, long len, int advice);

    [LibraryImport(Libc, EntryPoint = "lseek", SetLastError = true)]
    private static partial long lseek(SafeFileHandle fd, long offset, int whence);

    /// <summary>fdatasync(2), retried on EINTR. Returns 0 or the errno.</summary>
    public static int DataSync(SafeFileHandle fd)
    {
        while (true)
        {
            if (fdatasync(fd) == 0)
            {
                return 0;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
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
            if (fallocate(fd, mode, offset, length) == 0)
            {
                return 0;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                return errno;
            }
        }
    }

    /// <summary>posix_fadvise(2). Returns 0 or the error number.</summary>
    public static int Advise(SafeFileHandle fd, long offset, long length, int advice) =>
        posix_fadvise(fd, offset, length, advice);

    /// <summary>lseek(2). Returns the resulting offset, or -1 with the errno in <paramref name="errno"/>.</summary>
    /// <remarks>
    /// Moves the descriptor's shared file position, which nothing else here uses: all data
    /// I/O is positional (pread/pwrite), so concurrent seeks are harmless.
    /// </remarks>
    public static long Seek(SafeFileHandle fd, long offset, int whence, out int errno)
    {
        long result = lseek(fd, offset, whence);
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
        return errno is ENOSPC or EDQUOT or EFBIG
            ? new ExportException(ExportError.NoSpace, message)
            : new IOException(message, errno);
    }
}
