using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// The three file-system calls the base registry needs that .NET does not offer: an flock
/// that .NET does not take for us, fsync of a directory (so a rename is durable), and the
/// file type of a path (is it a regular file?).
/// </summary>
/// <remarks>
/// The lock file is opened with open(2), not a FileStream: .NET takes its own non-blocking
/// flock on every file it opens (LOCK_SH for reading), which would make a second CLI fail
/// to even open the lock file while the first holds it, instead of waiting its turn.
/// The type comes from statx(2) because its buffer has one layout on every architecture,
/// unlike stat(2)'s.
/// </remarks>
internal static unsafe partial class PosixFiles
{
    private const string Libc = "libc";
    private const int O_RDONLY = 0x0;
    private const int O_RDWR = 0x2;
    private const int O_CREAT = 0x40;
    private const int O_DIRECTORY = 0x10000;
    private const int O_CLOEXEC = 0x80000;
    private const int LOCK_EX = 2;
    private const int LOCK_NB = 4;
    private const int EINTR = 4;
    private const int EWOULDBLOCK = 11;
    private const int ENOENT = 2;
    private const int AT_FDCWD = -100;
    private const uint STATX_TYPE = 0x1;
    private const int StatxBufferBytes = 256;
    private const int StatxModeOffset = 28;
    private const int S_IFMT = 0xF000;
    private const int S_IFREG = 0x8000;
    private const int S_IFDIR = 0x4000;
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>What a path is, as far as the registry cares.</summary>
    public enum FileKind
    {
        Missing,
        Regular,
        Directory,
        Other,
    }

    /// <summary>
    /// Takes an exclusive flock on <paramref name="path"/> (created if need be), waiting for
    /// whoever holds it for at most <paramref name="timeout"/>. Disposing the handle unlocks.
    /// </summary>
    public static SafeFileHandle LockExclusive(string path, TimeSpan timeout)
    {
        var handle = Open(path, O_RDWR | O_CREAT | O_CLOEXEC, mode: 0b110_110_100); // 0664: any user who may edit the registry may lock it

        // Polled with LOCK_NB because a blocking flock cannot time out; holders keep it for milliseconds.
        var clock = Stopwatch.StartNew();
        while (flock(handle, LOCK_EX | LOCK_NB) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == EWOULDBLOCK && clock.Elapsed < timeout)
            {
                Thread.Sleep(LockPollInterval);
            }
            else if (errno != EINTR)
            {
                handle.Dispose();
                throw errno == EWOULDBLOCK
                    ? new IOException($"{path} has been locked by another blockoverlay command for {timeout.TotalSeconds:0} s; try again when it is done")
                    : Failure("flock", path, errno);
            }
        }

        return handle;
    }

    /// <summary>fsync(2) of a directory: makes the renames and creations in it durable.</summary>
    public static void SyncDirectory(string path)
    {
        using var handle = Open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, mode: 0);
        while (fsync(handle) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                throw Failure("fsync", path, errno);
            }
        }
    }

    /// <summary>The type of what <paramref name="path"/> names (following symbolic links).</summary>
    public static FileKind KindOf(string path)
    {
        byte* buffer = stackalloc byte[StatxBufferBytes];
        if (statx(AT_FDCWD, path, 0, STATX_TYPE, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno == ENOENT ? FileKind.Missing : throw Failure("statx", path, errno);
        }

        return (*(ushort*)(buffer + StatxModeOffset) & S_IFMT) switch
        {
            S_IFREG => FileKind.Regular,
            S_IFDIR => FileKind.Directory,
            _ => FileKind.Other,
        };
    }

    private static SafeFileHandle Open(string path, int flags, uint mode)
    {
        int fd;
        while ((fd = open(path, flags, mode)) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EINTR)
            {
                throw Failure("open", path, errno);
            }
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    private static IOException Failure(string call, string path, int errno) =>
        new($"{call} {path}: {Marshal.GetPInvokeErrorMessage(errno)}");

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, uint mode);

    [LibraryImport(Libc, EntryPoint = "flock", SetLastError = true)]
    private static partial int flock(SafeFileHandle fd, int operation);

    [LibraryImport(Libc, EntryPoint = "fsync", SetLastError = true)]
    private static partial int fsync(SafeFileHandle fd);

    [LibraryImport(Libc, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
