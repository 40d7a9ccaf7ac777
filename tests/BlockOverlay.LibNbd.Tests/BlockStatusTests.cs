namespace BlockOverlay.LibNbd.Tests;

[TestFixture]
public sealed class BlockStatusTests
{
    private const ulong MiB = 1 << 20;
    private NbdkitServer server = null!;

    [OneTimeSetUp]
    public void StartServer() => server = NbdkitServer.StartUnix("memory", "64M");

    [OneTimeTearDown]
    public void StopServer() => server?.Dispose();

    [Test]
    public void Partly_written_memory_disk_reports_a_hole_then_data()
    {
        using var client = Connect(MetaContexts.BaseAllocation);
        client.Pwrite(new byte[64 * 1024].Select(_ => (byte)0x5A).ToArray(), 9 * MiB);

        var status = client.BlockStatus(2 * MiB, 8 * MiB);

        Assert.That(status.Keys, Is.EquivalentTo(new[] { MetaContexts.BaseAllocation }));
        var extents = status[MetaContexts.BaseAllocation];
        var first = extents[0];
        var data = extents.First(e => e.Offset + e.Length > 9 * MiB);
        Assert.Multiple(() =>
        {
            Assert.That(first.Offset, Is.EqualTo(8 * MiB));
            Assert.That(first.Length, Is.EqualTo(MiB));
            Assert.That((AllocationState)first.Flags, Is.EqualTo(AllocationState.Hole | AllocationState.Zero));
            Assert.That(data.Offset, Is.EqualTo(9 * MiB));
            Assert.That((AllocationState)data.Flags, Is.EqualTo(AllocationState.Data));
        });
    }

    [Test]
    public void Extent_offsets_follow_from_the_lengths_before_them()
    {
        using var client = Connect(MetaContexts.BaseAllocation);
        client.Pwrite(new byte[4096].Select(_ => (byte)1).ToArray(), 20 * MiB + (256 * 1024));

        var extents = client.BlockStatus(MiB, 20 * MiB)[MetaContexts.BaseAllocation];

        Assert.That(extents, Has.Count.GreaterThanOrEqualTo(2));
        for (var i = 1; i < extents.Count; i++)
        {
            Assert.That(extents[i].Offset, Is.EqualTo(extents[i - 1].Offset + extents[i - 1].Length));
        }
    }

    [Test]
    public void ReqOne_limits_the_reply_to_one_extent()
    {
        using var client = Connect(MetaContexts.BaseAllocation);
        client.Pwrite(new byte[4096].Select(_ => (byte)1).ToArray(), 30 * MiB + (512 * 1024));

        var extents = client.BlockStatus(MiB, 30 * MiB, CommandFlags.ReqOne)[MetaContexts.BaseAllocation];

        Assert.That(extents, Has.Count.EqualTo(1));
    }

    [Test]
    public void Requested_meta_context_is_negotiated()
    {
        using var client = Connect(MetaContexts.BaseAllocation);

        Assert.Multiple(() =>
        {
            Assert.That(client.CanMetaContext(MetaContexts.BaseAllocation), Is.True);
            Assert.That(client.CanMetaContext("qemu:dirty-bitmap:none"), Is.False);
        });
    }

    private NbdClient Connect(string metaContext)
    {
        var client = new NbdClient();
        client.AddMetaContext(metaContext);
        client.ConnectUnix(server.SocketPath);
        return client;
    }
}
