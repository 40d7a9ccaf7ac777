using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// One test's use of the one-node test cluster (<see cref="CephTestCluster"/>): while it lives,
/// <c>$CEPH_CONF</c> names the cluster, which is how every <c>blockoverlay</c> command and
/// server the test starts finds it (the Ceph convention); disposing it removes the images it
/// named (with their snapshots) and restores <c>$CEPH_CONF</c>.
/// </summary>
internal sealed class CephScope : IAsyncDisposable
{
    private readonly string? _previousConf;
    private readonly List<RbdAddress> _images = [];
    private readonly HashSet<RbdAddress> _snapshotted = [];

    private CephScope(CephTestCluster cluster)
    {
        Cluster = cluster;
        _previousConf = Environment.GetEnvironmentVariable("CEPH_CONF");
        Environment.SetEnvironmentVariable("CEPH_CONF", cluster.ConfigFile);
    }

    public CephTestCluster Cluster { get; }

    /// <summary>Starts the shared cluster if this run has not yet, and points $CEPH_CONF at it.</summary>
    public static async Task<CephScope> EnterAsync() => new(await CephTestCluster.SharedAsync());

    /// <summary>A new image name in pool rbd (not created), removed when the scope ends.</summary>
    public RbdAddress NewImage(string purpose)
    {
        var image = CephTestCluster.NewImage(purpose);
        _images.Add(image);
        return image;
    }

    /// <summary>
    /// A new image holding the bytes of <paramref name="file"/> (<c>rbd import</c>) and its
    /// snapshot <paramref name="snapshot"/>; returns the snapshot's address. Removed, snapshots
    /// and all, when the scope ends.
    /// </summary>
    public RbdAddress ImportSnapshot(string purpose, string file, string snapshot = "v1")
    {
        var image = NewImage(purpose);
        Rbd("import", file, Spec(image));
        return Snapshot(image, snapshot);
    }

    /// <summary>Takes snapshot <paramref name="snapshot"/> of <paramref name="image"/> as it is now (<c>rbd snap create</c>).</summary>
    public RbdAddress Snapshot(RbdAddress image, string snapshot)
    {
        var address = image with { Snapshot = snapshot };
        Rbd("snap", "create", Spec(address));
        _snapshotted.Add(image with { Snapshot = null });
        return address;
    }

    /// <summary>Removes one snapshot (<c>rbd snap rm</c>).</summary>
    public void RemoveSnapshot(RbdAddress snapshot) => Rbd("snap", "rm", Spec(snapshot));

    /// <summary>Writes <paramref name="file"/>'s bytes (a multiple of 4 KiB) over the image from offset 0 (<c>rbd import</c> only makes new images).</summary>
    public async Task OverwriteAsync(RbdAddress image, string file)
    {
        await using var device = await RbdDevice.OpenAsync(image, Cluster.Options);
        using var buffer = new AlignedBuffer(checked((int)new FileInfo(file).Length));
        (await File.ReadAllBytesAsync(file)).CopyTo(buffer.Memory);
        await device.WriteAsync(0, buffer.Memory, durable: true);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var image in _images)
        {
            if (_snapshotted.Contains(image))
            {
                Rbd("snap", "purge", Spec(image), "--no-progress");
            }

            await RbdDevice.RemoveAsync(image, Cluster.Options);
        }

        Environment.SetEnvironmentVariable("CEPH_CONF", _previousConf);
    }

    /// <summary>POOL/IMAGE[@SNAP], as the rbd tool names an image.</summary>
    private static string Spec(RbdAddress address) => address.ToString()[RbdAddress.Prefix.Length..];

    private void Rbd(params string[] args) => Run("/usr/bin/rbd", ["-c", Cluster.ConfigFile, .. args]);

    private static void Run(string tool, params string[] args)
    {
        var result = Tool.Run(tool, args, TimeSpan.FromSeconds(60));
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
    }
}
