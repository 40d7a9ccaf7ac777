using System.Runtime.InteropServices;

namespace BlockOverlay.Io.Interop;

/// <summary>
/// The binding of native/uring_shim.c (libblockoverlay_uring.so, built by native/Makefile and
/// copied beside the assemblies): an io_uring per store file, requests submitted in batches,
/// completions reaped by one thread. Declarations only; <see cref="UringFileIo"/> is the caller.
/// </summary>
/// <remarks>
/// Every function returns 0 or a count, or a negative errno (the shim does not use errno).
/// A missing library (not built, or liburing absent) is a <see cref="DllNotFoundException"/>
/// at the first call.
/// </remarks>
internal static unsafe partial class UringShim
{
    private const string Library = "blockoverlay_uring";

    /// <summary>enum bo_op.</summary>
    public enum Operation : uint
    {
        Nop = 0,
        Read = 1,
        Write = 2,
        WriteDsync = 3,
        Fdatasync = 4,
        WriteV = 5,
        WriteVDsync = 6,
    }

    /// <summary>
    /// struct bo_request (40 bytes on LP64, asserted in the C). For <see cref="Operation.WriteV"/>
    /// and <see cref="Operation.WriteVDsync"/>, <see cref="Buffer"/> is an iovec array and
    /// <see cref="Length"/> its count; the array must stay valid until the completion is reaped.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Request
    {
        public ulong Cookie;
        public long Offset;
        public void* Buffer;
        public uint Length;
        public int Fd;
        public Operation Op;
        public uint Reserved;
    }

    [LibraryImport(Library, EntryPoint = "bo_ring_create")]
    public static partial int Create(uint entries, uint completionEntries, out nint ring);

    [LibraryImport(Library, EntryPoint = "bo_ring_destroy")]
    public static partial void Destroy(nint ring);

    [LibraryImport(Library, EntryPoint = "bo_ring_submit")]
    public static partial int Submit(nint ring, Request* requests, uint count);

    /// <summary>Blocks until at least one completion is there, then takes up to <paramref name="max"/>.</summary>
    [LibraryImport(Library, EntryPoint = "bo_ring_reap")]
    public static partial int Reap(nint ring, ulong* cookies, int* results, uint max);
}
