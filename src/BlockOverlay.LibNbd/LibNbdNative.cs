// Raw imports from libnbd.so.0 (libnbd 1.14, /usr/include/libnbd.h). Names and argument
// order follow the C header so each line can be checked against `man 3 nbd_…`.
//
// Two kinds of string results exist in libnbd, and mixing them up corrupts the heap:
//   const char* (nbd_get_error, nbd_get_protocol, nbd_get_version) belongs to libnbd:
//     declared as byte* here and only read, never freed;
//   char*       (nbd_get_export_name, …) is malloc'd for the caller: read, then free().
// Neither is declared as `string`, because the marshaller would free libnbd's memory.

using System.Runtime.InteropServices;

namespace BlockOverlay.LibNbd;

internal static unsafe partial class LibNbdNative
{
    private const string Library = "libnbd.so.0";

    // Callback structs are passed by value, as in the header. We always leave `Free`
    // NULL: every callback here belongs to a synchronous call, so the caller releases
    // user_data itself once the call has returned.

    [StructLayout(LayoutKind.Sequential)]
    internal struct ListCallback
    {
        public delegate* unmanaged<IntPtr, byte*, byte*, int> Callback;
        public IntPtr UserData;
        public IntPtr Free;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct MetaContextCallback
    {
        public delegate* unmanaged<IntPtr, byte*, int> Callback;
        public IntPtr UserData;
        public IntPtr Free;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct ExtentCallback
    {
        public delegate* unmanaged<IntPtr, byte*, ulong, uint*, nuint, int*, int> Callback;
        public IntPtr UserData;
        public IntPtr Free;
    }

    [StructLayout(LayoutKind.Sequential)]
    internal struct ChunkCallback
    {
        public delegate* unmanaged<IntPtr, void*, nuint, ulong, uint, int*, int> Callback;
        public IntPtr UserData;
        public IntPtr Free;
    }

    /// <summary>All fields zero: NBD_NULL_COMPLETION. Callers retire aio commands with
    /// nbd_aio_command_completed instead of a callback.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct CompletionCallback
    {
        public IntPtr Callback;
        public IntPtr UserData;
        public IntPtr Free;
    }

    // Handle lifetime and errors.
    [LibraryImport(Library)] internal static partial NbdHandle nbd_create();
    [LibraryImport(Library)] internal static partial void nbd_close(IntPtr h);
    [LibraryImport(Library)] internal static partial byte* nbd_get_error();
    [LibraryImport(Library)] internal static partial int nbd_get_errno();

    // Settings before and during negotiation.
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_set_export_name(NbdHandle h, string exportName);
    [LibraryImport(Library)] internal static partial int nbd_set_full_info(NbdHandle h, [MarshalAs(UnmanagedType.U1)] bool request);
    [LibraryImport(Library)] internal static partial int nbd_set_request_structured_replies(NbdHandle h, [MarshalAs(UnmanagedType.U1)] bool request);
    [LibraryImport(Library)] internal static partial int nbd_get_structured_replies_negotiated(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_set_handshake_flags(NbdHandle h, uint flags);
    [LibraryImport(Library)] internal static partial uint nbd_get_handshake_flags(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_set_strict_mode(NbdHandle h, uint flags);
    [LibraryImport(Library)] internal static partial uint nbd_get_strict_mode(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_set_opt_mode(NbdHandle h, [MarshalAs(UnmanagedType.U1)] bool enable);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_add_meta_context(NbdHandle h, string name);

    // Options (only while negotiating in opt mode).
    [LibraryImport(Library)] internal static partial int nbd_opt_go(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_opt_abort(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_opt_info(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_opt_list(NbdHandle h, ListCallback list);
    [LibraryImport(Library)] internal static partial int nbd_opt_list_meta_context(NbdHandle h, MetaContextCallback context);

    // Connecting.
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_connect_uri(NbdHandle h, string uri);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_connect_unix(NbdHandle h, string unixSocket);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_connect_tcp(NbdHandle h, string hostname, string port);
    [LibraryImport(Library)] internal static partial int nbd_connect_command(NbdHandle h, IntPtr* argv);

    // What the server offers.
    [LibraryImport(Library)] internal static partial long nbd_get_size(NbdHandle h);
    [LibraryImport(Library)] internal static partial long nbd_get_block_size(NbdHandle h, int sizeType);
    [LibraryImport(Library)] internal static partial int nbd_is_read_only(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_flush(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_fua(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_trim(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_zero(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_fast_zero(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_df(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_multi_conn(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_can_cache(NbdHandle h);
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)] internal static partial int nbd_can_meta_context(NbdHandle h, string metaContext);
    [LibraryImport(Library)] internal static partial byte* nbd_get_export_name(NbdHandle h);
    [LibraryImport(Library)] internal static partial byte* nbd_get_canonical_export_name(NbdHandle h);
    [LibraryImport(Library)] internal static partial byte* nbd_get_export_description(NbdHandle h);
    [LibraryImport(Library)] internal static partial byte* nbd_get_protocol(NbdHandle h);
    [LibraryImport(Library)] internal static partial byte* nbd_get_version(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_aio_is_negotiating(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_aio_is_ready(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_aio_is_closed(NbdHandle h);

    // Synchronous commands.
    [LibraryImport(Library)] internal static partial int nbd_pread(NbdHandle h, void* buf, nuint count, ulong offset, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_pread_structured(NbdHandle h, void* buf, nuint count, ulong offset, ChunkCallback chunk, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_pwrite(NbdHandle h, void* buf, nuint count, ulong offset, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_flush(NbdHandle h, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_trim(NbdHandle h, ulong count, ulong offset, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_zero(NbdHandle h, ulong count, ulong offset, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_cache(NbdHandle h, ulong count, ulong offset, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_block_status(NbdHandle h, ulong count, ulong offset, ExtentCallback extent, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_shutdown(NbdHandle h, uint flags);

    // Asynchronous commands: each returns a cookie (> 0) or -1.
    [LibraryImport(Library)] internal static partial long nbd_aio_pread(NbdHandle h, void* buf, nuint count, ulong offset, CompletionCallback completion, uint flags);
    [LibraryImport(Library)] internal static partial long nbd_aio_pwrite(NbdHandle h, void* buf, nuint count, ulong offset, CompletionCallback completion, uint flags);
    [LibraryImport(Library)] internal static partial long nbd_aio_flush(NbdHandle h, CompletionCallback completion, uint flags);
    [LibraryImport(Library)] internal static partial long nbd_aio_trim(NbdHandle h, ulong count, ulong offset, CompletionCallback completion, uint flags);
    [LibraryImport(Library)] internal static partial long nbd_aio_zero(NbdHandle h, ulong count, ulong offset, CompletionCallback completion, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_aio_disconnect(NbdHandle h, uint flags);
    [LibraryImport(Library)] internal static partial int nbd_aio_command_completed(NbdHandle h, ulong cookie);
    [LibraryImport(Library)] internal static partial long nbd_aio_peek_command_completed(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_aio_in_flight(NbdHandle h);
    [LibraryImport(Library)] internal static partial int nbd_poll(NbdHandle h, int timeout);
}

/// <summary>Owns one <c>struct nbd_handle*</c>; nbd_close runs exactly once, even if the
/// client is never disposed.</summary>
internal sealed class NbdHandle : SafeHandle
{
    public NbdHandle() : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        LibNbdNative.nbd_close(handle);
        return true;
    }
}
