// A thin, faithful client over one libnbd handle. It adds no policy: every method is one
// libnbd call (the wait helpers loop over a few), so tests see exactly what libnbd sends
// and receives. With SetStrictMode(StrictMode.None) it sends requests a server must refuse.
//
// Errors: any libnbd failure becomes an NbdException with libnbd's message and errno.
// Callbacks: run inside the synchronous call that registered them, on the calling thread;
// results travel through a GCHandle passed as user_data and released after the call.
// Threads: libnbd locks the handle per call, so one client may be used from several
// threads, but aio buffers and cookies are the caller's to coordinate.

using System.Diagnostics.CodeAnalysis;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using static BlockOverlay.LibNbd.LibNbdNative;

namespace BlockOverlay.LibNbd;

public sealed unsafe class NbdClient : IDisposable
{
    // libnbd refuses a NULL buffer (EFAULT) even for count 0, but a zero-length request
    // is exactly what strict-mode tests want to send; this byte is never read or written.
    private static readonly byte* EmptyBuffer = (byte*)NativeMemory.Alloc(1);

    private readonly NbdHandle handle;

    public NbdClient()
    {
        handle = nbd_create();
        if (handle.IsInvalid)
        {
            handle.Dispose();
            throw NbdException.FromLastError();
        }
    }

    /// <summary>Closes the connection without NBD_CMD_DISC (call <see cref="Shutdown"/>
    /// first for a clean disconnect) and reaps a server started by ConnectCommand.</summary>
    public void Dispose() => handle.Dispose();

    // ---- Settings (before connecting) ----

    public void SetExportName(string exportName) => Check(nbd_set_export_name(handle, exportName));

    /// <summary>Ask the server for the canonical name and description as well.</summary>
    public void SetFullInfo(bool request) => Check(nbd_set_full_info(handle, request));

    public void SetRequestStructuredReplies(bool request) => Check(nbd_set_request_structured_replies(handle, request));

    public void SetHandshakeFlags(HandshakeFlags flags) => Check(nbd_set_handshake_flags(handle, (uint)flags));

    public HandshakeFlags GetHandshakeFlags() => (HandshakeFlags)nbd_get_handshake_flags(handle);

    public void SetStrictMode(StrictMode mode) => Check(nbd_set_strict_mode(handle, (uint)mode));

    public StrictMode GetStrictMode() => (StrictMode)nbd_get_strict_mode(handle);

    /// <summary>Stop after the handshake so options can be sent one by one (OptInfo,
    /// OptList, …) until OptGo or OptAbort.</summary>
    public void SetOptMode(bool enable) => Check(nbd_set_opt_mode(handle, enable));

    /// <summary>Request a meta context (e.g. <see cref="MetaContexts.BaseAllocation"/>)
    /// during negotiation; needed before BlockStatus.</summary>
    public void AddMetaContext(string name) => Check(nbd_add_meta_context(handle, name));

    // ---- Connecting ----

    /// <summary>nbd://host[:port]/export or nbd+unix:///export?socket=PATH.</summary>
    public void ConnectUri(string uri) => Check(nbd_connect_uri(handle, uri));

    public void ConnectUnix(string socketPath) => Check(nbd_connect_unix(handle, socketPath));

    public void ConnectTcp(string host, int port) =>
        Check(nbd_connect_tcp(handle, host, port.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>Runs argv[0] (searched in PATH) with a socket as its stdin and stdout,
    /// e.g. <c>nbdkit -s memory 1M</c>.</summary>
    public void ConnectCommand(params string[] argv)
    {
        ArgumentOutOfRangeException.ThrowIfZero(argv.Length);
        var nativeArgv = new IntPtr[argv.Length + 1]; // the last stays NULL, as execvp wants
        try
        {
            for (var i = 0; i < argv.Length; i++)
            {
                nativeArgv[i] = Marshal.StringToCoTaskMemUTF8(argv[i]);
            }

            fixed (IntPtr* p = nativeArgv)
            {
                Check(nbd_connect_command(handle, p));
            }
        }
        finally
        {
            foreach (var arg in nativeArgv)
            {
                Marshal.FreeCoTaskMem(arg);
            }
        }
    }

    // ---- Options (opt mode) ----

    public void OptGo() => Check(nbd_opt_go(handle));

    public void OptAbort() => Check(nbd_opt_abort(handle));

    /// <summary>NBD_OPT_INFO for the current export name; then GetSize, Can* report it.</summary>
    public void OptInfo() => Check(nbd_opt_info(handle));

    public IReadOnlyList<ExportEntry> OptList()
    {
        var collector = new Collector<ExportEntry>();
        using var userData = new GCHandle<Collector<ExportEntry>>(collector);
        var callback = new ListCallback { Callback = &OnExport, UserData = GCHandle<Collector<ExportEntry>>.ToIntPtr(userData) };
        return collector.Finish(nbd_opt_list(handle, callback));
    }

    /// <summary>The meta contexts the server offers that match those added with
    /// AddMetaContext (all of them if none were added).</summary>
    public IReadOnlyList<string> OptListMetaContext()
    {
        var collector = new Collector<string>();
        using var userData = new GCHandle<Collector<string>>(collector);
        var callback = new MetaContextCallback { Callback = &OnContext, UserData = GCHandle<Collector<string>>.ToIntPtr(userData) };
        return collector.Finish(nbd_opt_list_meta_context(handle, callback));
    }

    // ---- What the server offers ----

    public bool IsNegotiating => nbd_aio_is_negotiating(handle) != 0;

    public bool IsReady => nbd_aio_is_ready(handle) != 0;

    /// <summary>The connection ended cleanly (after a disconnect or OptAbort).</summary>
    public bool IsClosed => nbd_aio_is_closed(handle) != 0;

    public long GetSize() => Check(nbd_get_size(handle));

    /// <summary>In bytes; 0 when the server stated no such constraint.</summary>
    public long GetBlockSize(BlockSizeConstraint constraint) => Check(nbd_get_block_size(handle, (int)constraint));

    public bool IsReadOnly() => CheckBool(nbd_is_read_only(handle));

    public bool CanFlush() => CheckBool(nbd_can_flush(handle));

    public bool CanFua() => CheckBool(nbd_can_fua(handle));

    public bool CanTrim() => CheckBool(nbd_can_trim(handle));

    public bool CanZero() => CheckBool(nbd_can_zero(handle));

    public bool CanFastZero() => CheckBool(nbd_can_fast_zero(handle));

    public bool CanDf() => CheckBool(nbd_can_df(handle));

    public bool CanMultiConn() => CheckBool(nbd_can_multi_conn(handle));

    public bool CanCache() => CheckBool(nbd_can_cache(handle));

    public bool CanMetaContext(string name) => CheckBool(nbd_can_meta_context(handle, name));

    public bool GetStructuredRepliesNegotiated() => CheckBool(nbd_get_structured_replies_negotiated(handle));

    public string GetExportName() => TakeString(nbd_get_export_name(handle));

    /// <summary>Needs SetFullInfo(true) with most servers.</summary>
    public string GetCanonicalExportName() => TakeString(nbd_get_canonical_export_name(handle));

    /// <summary>Fails if the server sent no description (needs SetFullInfo(true) with most).</summary>
    public string GetExportDescription() => TakeString(nbd_get_export_description(handle));

    /// <summary>"newstyle-fixed", "newstyle" or "oldstyle".</summary>
    public string GetProtocol() => BorrowString(nbd_get_protocol(handle));

    /// <summary>The libnbd version, e.g. "1.14.2".</summary>
    public string GetVersion() => BorrowString(nbd_get_version(handle));

    // ---- Synchronous commands ----

    public void Pread(Span<byte> buffer, ulong offset, CommandFlags flags = CommandFlags.None)
    {
        fixed (byte* p = buffer)
        {
            Check(nbd_pread(handle, NonNull(p), (nuint)buffer.Length, offset, (uint)flags));
        }
    }

    /// <summary>A read that reports how the server split its structured reply.</summary>
    public IReadOnlyList<ReadChunk> PreadStructured(Span<byte> buffer, ulong offset, CommandFlags flags = CommandFlags.None)
    {
        var collector = new Collector<ReadChunk>();
        using var userData = new GCHandle<Collector<ReadChunk>>(collector);
        var callback = new ChunkCallback { Callback = &OnChunk, UserData = GCHandle<Collector<ReadChunk>>.ToIntPtr(userData) };
        fixed (byte* p = buffer)
        {
            return collector.Finish(nbd_pread_structured(handle, NonNull(p), (nuint)buffer.Length, offset, callback, (uint)flags));
        }
    }

    public void Pwrite(ReadOnlySpan<byte> buffer, ulong offset, CommandFlags flags = CommandFlags.None)
    {
        fixed (byte* p = buffer)
        {
            Check(nbd_pwrite(handle, NonNull(p), (nuint)buffer.Length, offset, (uint)flags));
        }
    }

    public void Flush(CommandFlags flags = CommandFlags.None) => Check(nbd_flush(handle, (uint)flags));

    public void Trim(ulong count, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_trim(handle, count, offset, (uint)flags));

    public void Zero(ulong count, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_zero(handle, count, offset, (uint)flags));

    public void Cache(ulong count, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_cache(handle, count, offset, (uint)flags));

    /// <summary>Extents per meta context (only contexts the server answered for). Contexts
    /// must have been added with AddMetaContext before connecting.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<BlockStatusExtent>> BlockStatus(
        ulong count, ulong offset, CommandFlags flags = CommandFlags.None)
    {
        var collector = new Collector<(string Context, BlockStatusExtent Extent)>();
        using var userData = new GCHandle<Collector<(string, BlockStatusExtent)>>(collector);
        var callback = new ExtentCallback { Callback = &OnExtents, UserData = GCHandle<Collector<(string, BlockStatusExtent)>>.ToIntPtr(userData) };
        return collector.Finish(nbd_block_status(handle, count, offset, callback, (uint)flags))
            .GroupBy(item => item.Context, item => item.Extent)
            .ToDictionary(group => group.Key, group => (IReadOnlyList<BlockStatusExtent>)[.. group]);
    }

    /// <summary>Sends NBD_CMD_DISC and waits until the server has closed the connection.</summary>
    public void Shutdown(ShutdownFlags flags = ShutdownFlags.None) => Check(nbd_shutdown(handle, (uint)flags));

    // ---- Asynchronous commands ----
    // Each returns the command's cookie. The buffer must stay undisposed until the command
    // is retired (WaitForCompletion, WaitForAnyCompletion or AioCommandCompleted).

    public long AioPread(NativeBuffer buffer, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_aio_pread(handle, buffer.Data, (nuint)buffer.Length, offset, default, (uint)flags));

    public long AioPwrite(NativeBuffer buffer, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_aio_pwrite(handle, buffer.Data, (nuint)buffer.Length, offset, default, (uint)flags));

    public long AioFlush(CommandFlags flags = CommandFlags.None) => Check(nbd_aio_flush(handle, default, (uint)flags));

    public long AioTrim(ulong count, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_aio_trim(handle, count, offset, default, (uint)flags));

    public long AioZero(ulong count, ulong offset, CommandFlags flags = CommandFlags.None) =>
        Check(nbd_aio_zero(handle, count, offset, default, (uint)flags));

    /// <summary>Sends NBD_CMD_DISC and returns at once; then poll until <see cref="IsClosed"/>.
    /// No command may follow. Commands still in flight may be stranded by the server (they
    /// then fail when retired), so a clean client first waits for AioInFlight() == 0.</summary>
    public void AioDisconnect() => Check(nbd_aio_disconnect(handle, 0)); // libnbd 1.14 defines no flags here

    /// <summary>True if the command has completed successfully (and is now retired), false
    /// if it is still in flight; throws if it failed (it is retired too).</summary>
    public bool AioCommandCompleted(long cookie) => CheckBool(nbd_aio_command_completed(handle, (ulong)cookie));

    /// <summary>The cookie of a completed but not yet retired command, or 0 if none is
    /// ready yet; throws if no command is in flight at all.</summary>
    public long AioPeekCommandCompleted() => Check(nbd_aio_peek_command_completed(handle));

    /// <summary>Commands still waiting for the server's reply.</summary>
    public int AioInFlight() => Check(nbd_aio_in_flight(handle));

    /// <summary>Moves the connection along: 1 if it made progress, 0 on timeout.</summary>
    public int Poll(int timeoutMilliseconds) => Check(nbd_poll(handle, timeoutMilliseconds));

    /// <summary>Polls until the command completes and retires it; throws if it failed.</summary>
    public void WaitForCompletion(long cookie)
    {
        while (!AioCommandCompleted(cookie))
        {
            Poll(-1);
        }
    }

    /// <summary>Polls until some command completes, retires it and returns its cookie;
    /// throws if it failed or if nothing is in flight. Keeps a queue at depth N by
    /// submitting one command for each cookie returned.</summary>
    public long WaitForAnyCompletion()
    {
        while (true)
        {
            var cookie = AioPeekCommandCompleted();
            if (cookie > 0)
            {
                AioCommandCompleted(cookie);
                return cookie;
            }

            Poll(-1);
        }
    }

    // ---- Callbacks (called by libnbd on the calling thread) ----
    // An exception must not unwind into C: it is stored and rethrown after the call.

    [UnmanagedCallersOnly]
    private static int OnExport(IntPtr userData, byte* name, byte* description)
    {
        var collector = GCHandle<Collector<ExportEntry>>.FromIntPtr(userData).Target;
        try
        {
            collector.Items.Add(new ExportEntry(BorrowString(name), BorrowString(description)));
            return 0;
        }
        catch (Exception e)
        {
            collector.Failure ??= e;
            return -1;
        }
    }

    [UnmanagedCallersOnly]
    private static int OnContext(IntPtr userData, byte* name)
    {
        var collector = GCHandle<Collector<string>>.FromIntPtr(userData).Target;
        try
        {
            collector.Items.Add(BorrowString(name));
            return 0;
        }
        catch (Exception e)
        {
            collector.Failure ??= e;
            return -1;
        }
    }

    /// <summary>entries holds nrEntries uint32s: (length, flags) pairs.</summary>
    [UnmanagedCallersOnly]
    private static int OnExtents(IntPtr userData, byte* metaContext, ulong offset, uint* entries, nuint nrEntries, int* error)
    {
        var collector = GCHandle<Collector<(string, BlockStatusExtent)>>.FromIntPtr(userData).Target;
        try
        {
            var context = BorrowString(metaContext);
            for (nuint i = 0; i + 1 < nrEntries; i += 2)
            {
                collector.Items.Add((context, new BlockStatusExtent(offset, entries[i], entries[i + 1])));
                offset += entries[i];
            }

            return 0;
        }
        catch (Exception e)
        {
            collector.Failure ??= e;
            return -1;
        }
    }

    /// <summary>For an error chunk, *error holds the server's errno on entry.</summary>
    [UnmanagedCallersOnly]
    private static int OnChunk(IntPtr userData, void* subBuffer, nuint count, ulong offset, uint status, int* error)
    {
        var collector = GCHandle<Collector<ReadChunk>>.FromIntPtr(userData).Target;
        try
        {
            var chunkStatus = (ReadChunkStatus)status;
            var errno = chunkStatus == ReadChunkStatus.Error ? *error : 0;
            collector.Items.Add(new ReadChunk(offset, count, chunkStatus, errno));
            return 0;
        }
        catch (Exception e)
        {
            collector.Failure ??= e;
            return -1;
        }
    }

    private sealed class Collector<T>
    {
        public List<T> Items { get; } = [];

        public Exception? Failure { get; set; }

        /// <summary>The callback's own failure explains more than libnbd's generic EPROTO.</summary>
        public List<T> Finish(int rc)
        {
            if (Failure is not null)
            {
                ExceptionDispatchInfo.Throw(Failure);
            }

            Check(rc);
            return Items;
        }
    }

    // ---- Helpers ----

    private static byte* NonNull(byte* p) => p == null ? EmptyBuffer : p;

    private static int Check(int rc)
    {
        if (rc == -1)
        {
            ThrowLastError();
        }

        return rc;
    }

    private static bool CheckBool(int rc)
    {
        Check(rc);
        return rc != 0;
    }

    private static long Check(long rc)
    {
        if (rc == -1)
        {
            ThrowLastError();
        }

        return rc;
    }

    private static string BorrowString(byte* p) =>
        Marshal.PtrToStringUTF8((IntPtr)p) ?? throw NbdException.FromLastError();

    /// <summary>For char* results: libnbd malloc'd them for us, so free() them here.</summary>
    private static string TakeString(byte* p)
    {
        if (p == null)
        {
            ThrowLastError();
        }

        try
        {
            return Marshal.PtrToStringUTF8((IntPtr)p)!;
        }
        finally
        {
            NativeMemory.Free(p); // plain free(3) on Linux, matching libnbd's malloc
        }
    }

    [DoesNotReturn]
    private static void ThrowLastError() => throw NbdException.FromLastError();
}
