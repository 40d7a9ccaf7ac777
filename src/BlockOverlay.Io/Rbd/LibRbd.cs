using System.Runtime.InteropServices;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// The librbd calls an RBD device needs (Ceph 16.2's librbd.so.1): create, open and close an
/// image, its size, the managed exclusive lock, and asynchronous reads, writes and flushes;
/// for read-only bases, the ids that make a snapshot's identity.
/// Every call returns 0 (or a byte count) or a negative errno. Handles are opaque pointers.
/// </summary>
internal static unsafe partial class LibRbd
{
    private const string Library = "librbd.so.1";

    /// <summary>RBD_FEATURE_LAYERING (features.h).</summary>
    public const ulong FeatureLayering = 1UL << 0;

    /// <summary>RBD_FEATURE_EXCLUSIVE_LOCK: one writer at a time, its lock broken only by blocklisting it.</summary>
    public const ulong FeatureExclusiveLock = 1UL << 2;

    /// <summary>RBD_LOCK_MODE_EXCLUSIVE (rbd_lock_mode_t).</summary>
    public const int LockModeExclusive = 0;

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_create2(nint ioctx, string name, ulong size, ulong features, ref int order);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_remove(nint ioctx, string name);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_open(nint ioctx, string name, out nint image, string? snapshot);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_open_read_only(nint ioctx, string name, out nint image, string? snapshot);

    [LibraryImport(Library)]
    public static partial int rbd_close(nint image);

    [LibraryImport(Library)]
    public static partial int rbd_get_size(nint image, out ulong size);

    [LibraryImport(Library)]
    public static partial int rbd_get_id(nint image, byte* id, nuint idLength);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_snap_get_id(nint image, string snapshot, out ulong snapshotId);

    [LibraryImport(Library)]
    public static partial int rbd_lock_acquire(nint image, int mode);

    [LibraryImport(Library)]
    public static partial int rbd_lock_get_owners(nint image, out int mode, nint* owners, ref nuint maxOwners);

    [LibraryImport(Library)]
    public static partial void rbd_lock_get_owners_cleanup(nint* owners, nuint count);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_lock_break(nint image, int mode, string owner);

    [LibraryImport(Library)]
    public static partial int rbd_aio_create_completion(nint argument, delegate* unmanaged<nint, nint, void> callback, out nint completion);

    [LibraryImport(Library)]
    public static partial int rbd_aio_read2(nint image, ulong offset, nuint length, byte* buffer, nint completion, int flags);

    [LibraryImport(Library)]
    public static partial int rbd_aio_write2(nint image, ulong offset, nuint length, byte* buffer, nint completion, int flags);

    [LibraryImport(Library)]
    public static partial int rbd_aio_flush(nint image, nint completion);

    [LibraryImport(Library)]
    public static partial nint rbd_aio_get_return_value(nint completion);

    [LibraryImport(Library)]
    public static partial void rbd_aio_release(nint completion);
}
