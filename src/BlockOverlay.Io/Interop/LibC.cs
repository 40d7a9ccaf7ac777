using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io.Interop;

/// <summary>
/// The one binding of libc (internal: Io, Engine and Host use it): the calls .NET does not give us, their flags (the errno values are in
/// <see cref="Errno"/>). Only declarations live here; what a call means to its caller (retries,
/// which errno is an answer, which exception) stays with the caller: the devices of this
/// project, the file export of the engine, the base registry of the host.
/// </summary>
/// <remarks>
/// Why each call: open(2) keeps O_DIRECT (FileStream and File.OpenHandle drop it) and lets a
/// lock file be opened without .NET's own advisory flock; flock(2); pwritev2(2) with RWF_DSYNC
/// for forced-unit-access writes; preadv2(2) with RWF_NOWAIT for reads from the page cache alone; fdatasync(2)/fsync(2); fallocate(2) and posix_fadvise(2);
/// lseek(2) with SEEK_DATA/SEEK_HOLE; statx(2), whose buffer has one layout on every
/// architecture (stat(2)'s does not); realpath(3). Linux only: flag values that differ by
/// architecture are picked at start; <c>off_t</c> is 64-bit, so offsets are <see cref="long"/>.
/// </remarks>
internal static unsafe partial class LibC
{
    private const string Library = "libc";

    public const int O_RDONLY = 0x0;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_CLOEXEC = 0x80000;

    /// <summary>O_DIRECT: 040000 on x86-64, 0200000 on arm64 (asm-generic vs arch headers).</summary>
    public static readonly int O_DIRECT = ByArchitecture(x64: 0x4000, arm64: 0x10000, "O_DIRECT");

    /// <summary>O_DIRECTORY: 0200000 on x86-64, 040000 on arm64.</summary>
    public static readonly int O_DIRECTORY = ByArchitecture(x64: 0x10000, arm64: 0x4000, "O_DIRECTORY");

    public const int LOCK_SH = 1;
    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;

    public const int SEEK_END = 2;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    /// <summary>Per-write O_DSYNC: the write is on stable media when pwritev2 returns (FUA).</summary>
    public const int RWF_DSYNC = 0x2;

    /// <summary>Per-read: EAGAIN instead of waiting for the device (a buffered read copies only what the page cache holds).</summary>
    public const int RWF_NOWAIT = 0x8;

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    public const int POSIX_FADV_WILLNEED = 3;

    /// <summary>madvise(2): back this range with transparent huge pages where the kernel can.</summary>
    public const int MADV_HUGEPAGE = 14;

    public const int AT_FDCWD = -100;
    public const int AT_EMPTY_PATH = 0x1000;
    public const uint STATX_TYPE = 0x1;
    public const uint STATX_BASIC_STATS = 0x7ff;

    /// <summary>Bytes of struct statx, and where its fields are: u16 stx_mode, u64 stx_ino and stx_size, stx_ctime (i64 seconds, u32 nanoseconds), u32 stx_dev_major and stx_dev_minor.</summary>
    public const int StatxBufferBytes = 256, StatxModeOffset = 28, StatxInodeOffset = 32, StatxSizeOffset = 40, StatxChangeTimeOffset = 96,
        StatxDeviceOffset = 136;

    public const int S_IFMT = 0xF000;
    public const int S_IFREG = 0x8000;
    public const int S_IFDIR = 0x4000;

    /// <summary>struct iovec.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    // open is variadic in C; the x86-64 and arm64 Linux ABIs pass the mode like a fixed argument.
    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags, uint mode);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int flock(SafeFileHandle fd, int operation);

    [LibraryImport(Library, SetLastError = true)]
    public static partial long lseek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int ftruncate(SafeFileHandle fd, long length);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int fdatasync(SafeFileHandle fd);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int fsync(SafeFileHandle fd);

    [LibraryImport(Library, SetLastError = true)]
    public static partial nint preadv2(SafeFileHandle fd, IoVec* iov, int iovcnt, long offset, int flags);

    [LibraryImport(Library, SetLastError = true)]
    public static partial nint pwritev2(SafeFileHandle fd, IoVec* iov, int iovcnt, long offset, int flags);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int fallocate(SafeFileHandle fd, int mode, long offset, long len);

    /// <summary>posix_fadvise(2) returns the error number; it does not set errno.</summary>
    [LibraryImport(Library)]
    public static partial int posix_fadvise(SafeFileHandle fd, long offset, long len, int advice);

    [LibraryImport(Library, SetLastError = true)]
    public static partial int madvise(void* address, nuint length, int advice);

    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>statx(2) of an open file: <c>path</c> "" with <see cref="AT_EMPTY_PATH"/>.</summary>
    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statx(SafeFileHandle dirfd, string path, int flags, uint mask, byte* buffer);

    /// <summary>realpath(3) with a null buffer: the result is malloc'ed and must be given to <see cref="free"/>.</summary>
    [LibraryImport(Library, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint realpath(string path, nint resolved);

    [LibraryImport(Library)]
    public static partial void free(nint pointer);

    private static int ByArchitecture(int x64, int arm64, string name) => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => x64,
        Architecture.Arm64 => arm64,
        var other => throw new PlatformNotSupportedException($"{name} flag value unknown for {other}"),
    };
}
