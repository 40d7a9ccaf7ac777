using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// An open RBD image with the cluster connection and pool context it was opened through; all
/// three are closed together when the last user lets go (a <see cref="SafeHandle"/>, so an
/// I/O in flight holds the image open and a call after disposal fails instead of crashing).
/// </summary>
/// <remarks>
/// Every method here blocks (network round trips to the monitors and OSDs): callers run them
/// on <see cref="BlockingCalls"/> threads. The connection is configured with the client cache
/// off (<c>rbd_cache = false</c>), so librbd completes a write only when the OSDs have it.
/// Closing the image releases its exclusive lock.
/// </remarks>
internal sealed class RbdImageHandle : SafeHandle
{
    /// <summary>How long connecting may take before a missing cluster is reported (librados waits 300 s).</summary>
    private const string MountTimeoutSeconds = "30";

    private nint _cluster;
    private nint _ioctx;

    public RbdImageHandle()
        : base(0, ownsHandle: true)
    {
    }

    /// <summary>Starts one rbd_aio_* call on <paramref name="image"/> with <paramref name="buffer"/> and <paramref name="completion"/>.</summary>
    public unsafe delegate int AioCall(nint image, byte* buffer, nint completion);

    public override bool IsInvalid => handle == 0;

    /// <summary>"client.N": how other clients (and lock owner lists) name this connection.</summary>
    public string ClientName { get; private set; } = "";

    /// <summary>Connects to the cluster and opens the pool; the image is not open yet.</summary>
    public static RbdImageHandle Connect(RbdAddress address, CephClientOptions options)
    {
        var opened = new RbdImageHandle();
        Check(LibRados.rados_create(out opened._cluster, options.RadosId), "rados_create", options);
        try
        {
            int read = LibRados.rados_conf_read_file(opened._cluster, options.ConfigFile);
            if (read < 0)
            {
                throw new IOException($"cannot read the Ceph config ({options.Describe()}): {Errno.Describe(-read)}; " +
                                      "give it with --ceph-conf or $CEPH_CONF", -read);
            }

            Check(LibRados.rados_conf_parse_env(opened._cluster, null), "reading $CEPH_ARGS", options);
            Check(LibRados.rados_conf_set(opened._cluster, "rbd_cache", "false"), "rados_conf_set(rbd_cache)", options);
            Check(LibRados.rados_conf_set(opened._cluster, "client_mount_timeout", MountTimeoutSeconds), "rados_conf_set(client_mount_timeout)", options);
            Check(LibRados.rados_connect(opened._cluster), "connecting to the Ceph cluster", options);
            opened.ClientName = $"client.{LibRados.rados_get_instance_id(opened._cluster)}";
            int pool = LibRados.rados_ioctx_create(opened._cluster, address.Pool, out opened._ioctx);
            if (pool < 0)
            {
                throw new IOException($"cannot open pool '{address.Pool}' for {address}: {Errno.Describe(-pool)}", -pool);
            }

            return opened;
        }
        catch
        {
            opened.ReleaseConnection();
            throw;
        }
    }

    /// <summary>The pool context, for calls that act on the pool (create, remove).</summary>
    public nint PoolContext => _ioctx;

    /// <summary>Opens the image (read-only for a snapshot, or when asked); from now on this handle is valid.</summary>
    public void OpenImage(RbdAddress address, bool readOnly)
    {
        nint image;
        int result = readOnly || address.Snapshot is not null
            ? LibRbd.rbd_open_read_only(_ioctx, address.Image, out image, address.Snapshot)
            : LibRbd.rbd_open(_ioctx, address.Image, out image, null);
        if (result == -Errno.ENOENT)
        {
            throw new IOException(
                address.Snapshot is null
                    ? $"{address}: no such RBD image (make a store with: blockoverlay store create {address} --size SIZE)"
                    : $"{address}: no such RBD image or snapshot (make a snapshot with: rbd snap create {address.Pool}/{address.Image}@{address.Snapshot})",
                Errno.ENOENT);
        }

        if (result < 0)
        {
            throw new IOException($"rbd_open of {address} failed: {Errno.Describe(-result)}", -result);
        }

        SetHandle(image);
    }

    /// <summary>
    /// Runs one asynchronous call on the open image, <paramref name="buffer"/> pinned and the
    /// image held open until it completes. Returns the call's result: a byte count or 0, or a
    /// negative errno (a call refused at once included). Throws <see cref="ObjectDisposedException"/>
    /// when the image is closed.
    /// </summary>
    public async Task<long> RunAsync(ReadOnlyMemory<byte> buffer, AioCall start)
    {
        bool added = false;
        try
        {
            DangerousAddRef(ref added);
            using var pin = buffer.Pin();
            return await Start(pin, start);
        }
        finally
        {
            if (added)
            {
                DangerousRelease();
            }
        }
    }

    /// <summary>Who holds the image's exclusive lock now ("client.N"), empty when nobody does.</summary>
    public unsafe List<string> LockOwners()
    {
        const int room = 8;
        var owners = stackalloc nint[room];
        nuint count = room;
        int result = LibRbd.rbd_lock_get_owners(handle, out _, owners, ref count);
        if (result == -Errno.ENOENT)
        {
            return [];
        }

        if (result < 0)
        {
            throw new IOException($"rbd_lock_get_owners failed: {Errno.Describe(-result)}", -result);
        }

        var names = new List<string>();
        for (nuint i = 0; i < count; i++)
        {
            names.Add(Marshal.PtrToStringUTF8(owners[i]) ?? "?");
        }

        LibRbd.rbd_lock_get_owners_cleanup(owners, count);
        return names;
    }

    protected override bool ReleaseHandle()
    {
        // A fenced (blocklisted) client's close fails to release the lock it no longer has: nothing to do about it.
        _ = LibRbd.rbd_close(handle);
        ReleaseConnection();
        return true;
    }

    /// <summary>Closes the pool context and the connection (also when the image never opened).</summary>
    public void ReleaseConnection()
    {
        if (_ioctx != 0)
        {
            LibRados.rados_ioctx_destroy(_ioctx);
            _ioctx = 0;
        }

        if (_cluster != 0)
        {
            LibRados.rados_shutdown(_cluster);
            _cluster = 0;
        }
    }

    private unsafe Task<long> Start(System.Buffers.MemoryHandle pin, AioCall start)
    {
        var completion = RbdCompletion.Create();
        int started = start(handle, (byte*)pin.Pointer, completion.Handle);
        if (started < 0)
        {
            completion.Abandon();
            return Task.FromResult<long>(started);
        }

        return completion.Result;
    }

    private static void Check(int result, string call, CephClientOptions options)
    {
        if (result < 0)
        {
            throw new IOException($"{call} failed ({options.Describe()}): {Errno.Describe(-result)}", -result);
        }
    }
}
