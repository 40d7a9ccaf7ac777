using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// One test's use of the one-node test cluster (<see cref="CephTestCluster"/>): while it lives,
/// <c>$CEPH_CONF</c> names the cluster, which is how every <c>blockoverlay</c> command and
/// server the test starts finds it (the Ceph convention); disposing it removes the images it
/// named and restores <c>$CEPH_CONF</c>.
/// </summary>
internal sealed class CephScope : IAsyncDisposable
{
    private readonly string? _previousConf;
    private readonly List<RbdAddress> _images = [];

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

    public async ValueTask DisposeAsync()
    {
        foreach (var image in _images)
        {
            await RbdDevice.RemoveAsync(image, Cluster.Options);
        }

        Environment.SetEnvironmentVariable("CEPH_CONF", _previousConf);
    }
}
