using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io;

/// <summary>
/// The few libc calls .NET does not give us: open(2) that keeps O_DIRECT (FileStream and
/// File.OpenHandle silently drop it), flock(2) without .NET's own advisory locking,
/// pwritev2(2) with RWF_DSYNC for forced-unit-access writes, fdatasync(2), and realpath(3).
/// Linux only; flag values differ by architecture and are picked at start.
/// </summary>
internal static unsafe partial class LibC
{
    public const int O_RDONLY = 0x0;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>O_DIRECT: 040000 on x86-64, 0200000 on arm64 (asm-generic vs arch headers).</summary>
    public static readonly int O_DIRECT = RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        var other => throw new PlatformNotSupportedException($"O_DIRECT flag value unknown for {other}"),
    };

    public const int LOCK_SH = 1;
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    public const int SEEK_END = 2;
    public const int SEEK_HOLE = 4;

    /// <summary>Per-write O_DSYNC: the write is on stable media when pwritev2 returns (FUA).</summary>
    public const int RWF_DSYNC = 0x2;

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    // open is variadic in C; the x86-64 and arm64 Linux ABIs pass the mode like a fixed argument.
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int flock(SafeFileHandle fd, int operation);

    [LibraryImport("libc", SetLastError = true)]
    public static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(SafeFileHandle fd, long length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fdatasync(SafeFileHandle fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fsync(SafeFileHandle fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint pwritev2(SafeFileHandle fd, IoVec* iov, int iovcnt, long offset, int flags);

    /// <summary>realpath(3) with a null buffer: the result is malloc'ed and must be given to <see cref="free"/>.</summary>
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint realpath(string path, nint resolved);

    [LibraryImport("libc")]
    public static partial void free(nint pointer);
}
