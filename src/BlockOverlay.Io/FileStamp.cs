using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io;

/// <summary>
/// Which file a path or an open descriptor is, and which version of it: device, inode, size and
/// change time, from statx(2). Two equal stamps are the same file, unchanged as far as the
/// kernel says: a file replaced at its path has another inode, and a write, truncate or rename
/// of the same one moves its change time (which no user can set back, unlike the modification time).
/// </summary>
public readonly record struct FileStamp(ulong Device, ulong Inode, ulong Size, long ChangeSeconds, uint ChangeNanoseconds)
{
    /// <summary>The stamp of what <paramref name="path"/> names now (following links), or null if it cannot be stat'ed.</summary>
    public static unsafe FileStamp? OfPath(string path)
    {
        byte* buffer = stackalloc byte[LibC.StatxBufferBytes];
        return LibC.statx(LibC.AT_FDCWD, path, 0, LibC.STATX_BASIC_STATS, buffer) == 0 ? Read(buffer) : null;
    }

    /// <summary>The stamp of an open file.</summary>
    public static unsafe FileStamp Of(SafeFileHandle handle)
    {
        ArgumentNullException.ThrowIfNull(handle);
        byte* buffer = stackalloc byte[LibC.StatxBufferBytes];
        if (LibC.statx(handle, "", LibC.AT_EMPTY_PATH, LibC.STATX_BASIC_STATS, buffer) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"statx of an open file failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }

        return Read(buffer);
    }

    private static unsafe FileStamp Read(byte* buffer) => new(
        ((ulong)*(uint*)(buffer + LibC.StatxDeviceOffset) << 32) | *(uint*)(buffer + LibC.StatxDeviceOffset + 4),
        *(ulong*)(buffer + LibC.StatxInodeOffset),
        *(ulong*)(buffer + LibC.StatxSizeOffset),
        *(long*)(buffer + LibC.StatxChangeTimeOffset),
        *(uint*)(buffer + LibC.StatxChangeTimeOffset + 8));
}
