using System.CommandLine;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Host;

/// <summary>
/// Where a store lives, from the address a user types: a file or block device path, or
/// <c>rbd:POOL/IMAGE</c> for an image in a Ceph cluster. The one place the store commands,
/// <c>serve</c> and the instance commands open or create a store's device.
/// </summary>
/// <remarks>
/// The cluster is chosen the usual Ceph way: <c>--ceph-conf</c> (else $CEPH_CONF, else
/// /etc/ceph/ceph.conf), <c>--ceph-id</c> (else client.admin), the keyring the config names,
/// and $CEPH_ARGS. Those two options are on every command (<see cref="AddCephOptions"/>) and
/// read once at start (<see cref="UseCephOptions"/>), before any store is opened.
/// </remarks>
internal static class StoreDevices
{
    private static readonly Option<string> CephConf = new("--ceph-conf")
    {
        Description = "For rbd:POOL/IMAGE stores and rbd:POOL/IMAGE@SNAP bases: the Ceph config file (default: $CEPH_CONF, else /etc/ceph/ceph.conf).",
        Recursive = true,
    };

    private static readonly Option<string> CephId = new("--ceph-id")
    {
        Description = "For rbd:POOL/IMAGE stores and rbd:POOL/IMAGE@SNAP bases: the Ceph client id, as admin or client.admin (default: admin).",
        Recursive = true,
    };

    /// <summary>
    /// How long an opener waits for a store file's lock held by another process before it
    /// refuses: long enough for the kernel to let go of a killed server's files (FileDevice,
    /// "Opening"), short enough that a second server is told at once.
    /// </summary>
    public static readonly TimeSpan LockWait = TimeSpan.FromSeconds(5);

    /// <summary>How store files are read and written; set once at start by serve (others take auto's choice).</summary>
    private static IoBackend s_ioBackend = IoBackend.Auto;

    /// <summary>The cluster rbd: addresses refer to; set once at start from the command line.</summary>
    private static CephClientOptions s_ceph = new();

    /// <summary>The cluster of this command's rbd: stores and bases (from --ceph-conf and --ceph-id).</summary>
    public static CephClientOptions Ceph => s_ceph;

    /// <summary>Puts --ceph-conf and --ceph-id on <paramref name="root"/> and every command under it.</summary>
    public static void AddCephOptions(RootCommand root)
    {
        root.Options.Add(CephConf);
        root.Options.Add(CephId);
    }

    /// <summary>Takes the cluster choice from the parsed command line, for stores and for bases (rbd:POOL/IMAGE@SNAP) alike.</summary>
    public static void UseCephOptions(ParseResult parse)
    {
        s_ceph = new CephClientOptions(parse.GetValue(CephConf), parse.GetValue(CephId));
    }

    /// <summary>
    /// Chooses how store files are read and written (serve's <c>--io-backend</c>), before any
    /// store is opened. Returns why auto fell back to the threads backend, for the log; null when it did not.
    /// </summary>
    public static string? UseIoBackend(IoBackend requested)
    {
        (s_ioBackend, var fallback) = IoBackends.Resolve(requested);
        return fallback;
    }

    /// <summary>True for an rbd:POOL/IMAGE address.</summary>
    public static bool IsRbd(string store) => RbdAddress.IsRbd(store);

    /// <summary>The store as the user should see it named: an RBD address as written, a path made absolute.</summary>
    public static string Describe(string store) => IsRbd(store) ? RbdAddress.Parse(store).ToString() : Path.GetFullPath(store);

    /// <summary>
    /// Opens an existing store's device, locked for this process. With <paramref name="takeover"/>
    /// (RBD only) the current owner's lock is broken and the owner fenced off first. With
    /// <paramref name="readOnly"/> a store file is opened for reading under a shared lock, which a
    /// server's exclusive one refuses; an RBD image is opened as always, under its exclusive lock.
    /// A store file's lock held by another process is waited for, up to <see cref="LockWait"/>;
    /// <paramref name="waiting"/> is told when that wait begins.
    /// </summary>
    public static async Task<IBlockDevice> OpenAsync(string store, bool takeover = false, bool readOnly = false, Action? waiting = null)
    {
        if (IsRbd(store))
        {
            return await RbdDevice.OpenAsync(Image(store), s_ceph, takeover);
        }

        if (takeover)
        {
            throw new FormatException("--takeover is for stores on Ceph (rbd:POOL/IMAGE); a store file is released when its server exits");
        }

        if (Directory.Exists(store))
        {
            throw new IOException($"{store} is a directory; a store is a file (or a block device) made with: blockoverlay store create PATH --size SIZE");
        }

        if (!File.Exists(store))
        {
            throw new FileNotFoundException($"{store}: no such store (make one with: blockoverlay store create {store} --size SIZE)");
        }

        return FileDevice.Open(store, readOnly, s_ioBackend, LockWait, waiting);
    }

    /// <summary>Creates a new, empty device for a store of <paramref name="bytes"/> bytes, open and locked.</summary>
    public static async Task<IBlockDevice> CreateAsync(string store, long bytes) =>
        IsRbd(store)
            ? await RbdDevice.CreateAsync(Image(store), bytes, s_ceph)
            : await FileDevice.CreateAsync(store, bytes, s_ioBackend);

    /// <summary>Removes a device <see cref="CreateAsync"/> made, for a creation that failed half-way.</summary>
    public static Task RemoveAsync(string store)
    {
        if (IsRbd(store))
        {
            return RbdDevice.RemoveAsync(Image(store), s_ceph);
        }

        File.Delete(store);
        return Task.CompletedTask;
    }

    /// <summary>
    /// The RBD image an rbd: store address names. A snapshot is refused here, as bad input:
    /// a store is written, and a snapshot cannot be (the device would call it a bad argument).
    /// </summary>
    private static RbdAddress Image(string store)
    {
        var address = RbdAddress.Parse(store);
        return address.Snapshot is null
            ? address
            : throw new FormatException($"{address} is a snapshot: a store is an image (rbd:POOL/IMAGE)");
    }

    /// <summary>Completes when another server took the store over and this one can no longer write to it.</summary>
    public static Task Fenced(IBlockDevice device) => device is RbdDevice rbd ? rbd.Fenced : Task.Delay(Timeout.Infinite);

    /// <summary>
    /// Where the control socket of an RBD store's server is on this host: the image has no
    /// directory to sit beside, so under $XDG_RUNTIME_DIR (else the temp directory).
    /// </summary>
    public static string ControlPathFor(string store)
    {
        var address = RbdAddress.Parse(store);
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } dir ? dir : Path.GetTempPath();
        var directory = Path.Combine(runtime, "blockoverlay");
        Directory.CreateDirectory(directory);
        return Path.Combine(directory, $"rbd.{address.Pool}.{address.Image}.control");
    }
}
