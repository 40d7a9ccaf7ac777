using System.Runtime.InteropServices;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// The librados calls an RBD device needs: make a cluster handle, configure it the usual
/// Ceph way (a config file, CEPH_ARGS, explicit options), connect, and open a pool.
/// Every call returns 0 or a negative errno. Handles are opaque pointers.
/// </summary>
internal static partial class LibRados
{
    private const string Library = "librados.so.2";

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_create(out nint cluster, string? id);

    /// <summary>With a null path: $CEPH_CONF, else /etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf.</summary>
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_read_file(nint cluster, string? path);

    /// <summary>With a null name: the options in $CEPH_ARGS.</summary>
    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_parse_env(nint cluster, string? variable);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_conf_set(nint cluster, string option, string value);

    [LibraryImport(Library)]
    public static partial int rados_connect(nint cluster);

    /// <summary>This client's global id: the N of the "client.N" others see as the lock owner.</summary>
    [LibraryImport(Library)]
    public static partial ulong rados_get_instance_id(nint cluster);

    [LibraryImport(Library, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_ioctx_create(nint cluster, string pool, out nint ioctx);

    [LibraryImport(Library)]
    public static partial void rados_ioctx_destroy(nint ioctx);

    [LibraryImport(Library)]
    public static partial void rados_shutdown(nint cluster);
}
