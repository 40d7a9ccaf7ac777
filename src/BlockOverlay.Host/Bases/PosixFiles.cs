using System.Diagnostics;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// The three file-system calls the base registry needs that .NET does not offer (bound in
/// <see cref="LibC"/>): an flock that .NET does not take for us, fsync of a directory (so a
/// rename is durable), and the file type of a path (is it a regular file?).
/// </summary>
/// <remarks>
/// The lock file is opened with open(2), not a FileStream: .NET takes its own non-blocking
/// flock on every file it opens (LOCK_SH for reading), which would make a second CLI fail
/// to even open the lock file while the first holds it, instead of waiting its turn.
/// The type comes from statx(2) because its buffer has one layout on every architecture,
/// unlike stat(2)'s.
/// </remarks>
internal static unsafe class PosixFiles
{
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
        var handle = Open(path, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, mode: 0b110_110_100); // 0664: any user who may edit the registry may lock it

        // Polled with LibC.LOCK_NB because a blocking flock cannot time out; holders keep it for milliseconds.
        var clock = Stopwatch.StartNew();
        while (LibC.flock(handle, LibC.LOCK_EX | LibC.LOCK_NB) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EWOULDBLOCK && clock.Elapsed < timeout)
            {
                Thread.Sleep(LockPollInterval);
            }
            else if (errno != Errno.EINTR)
            {
                handle.Dispose();
                throw errno == Errno.EWOULDBLOCK
                    ? new IOException($"{path} has been locked by another blockoverlay command for {timeout.TotalSeconds:0} s; try again when it is done")
                    : Failure("flock", path, errno);
            }
        }

        return handle;
    }

    /// <summary>LibC.fsync(2) of a directory: makes the renames and creations in it durable.</summary>
    public static void SyncDirectory(string path)
    {
        using var handle = Open(path, LibC.O_RDONLY | LibC.O_DIRECTORY | LibC.O_CLOEXEC, mode: 0);
        while (LibC.fsync(handle) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                throw Failure("fsync", path, errno);
            }
        }
    }

    /// <summary>The type of what <paramref name="path"/> names (following symbolic links).</summary>
    public static FileKind KindOf(string path)
    {
        byte* buffer = stackalloc byte[LibC.StatxBufferBytes];
        if (LibC.statx(LibC.AT_FDCWD, path, 0, LibC.STATX_TYPE, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno == Errno.ENOENT ? FileKind.Missing : throw Failure("statx", path, errno);
        }

        return (*(ushort*)(buffer + LibC.StatxModeOffset) & LibC.S_IFMT) switch
        {
            LibC.S_IFREG => FileKind.Regular,
            LibC.S_IFDIR => FileKind.Directory,
            _ => FileKind.Other,
        };
    }

    private static SafeFileHandle Open(string path, int flags, uint mode)
    {
        int fd;
        while ((fd = LibC.open(path, flags, mode)) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                throw Failure("open", path, errno);
            }
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    private static IOException Failure(string call, string path, int errno) =>
        new($"{call} {path}: {Marshal.GetPInvokeErrorMessage(errno)}");
}
