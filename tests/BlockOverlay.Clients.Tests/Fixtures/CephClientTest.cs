namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// A test fixture whose <c>blockoverlay</c> commands and servers use the one-node test cluster
/// (<see cref="CephTestCluster"/>), named the way every Ceph client finds its cluster:
/// <c>$CEPH_CONF</c>, set for the fixture's tests and restored after them.
/// </summary>
public abstract class CephClientTest
{
    private string? _previousConf;

    [OneTimeSetUp]
    public async Task UseTheTestCluster()
    {
        _previousConf = Environment.GetEnvironmentVariable("CEPH_CONF");
        Environment.SetEnvironmentVariable("CEPH_CONF", (await CephTestCluster.SharedAsync()).ConfigFile);
    }

    [OneTimeTearDown]
    public void RestoreConf() => Environment.SetEnvironmentVariable("CEPH_CONF", _previousConf);
}
