using BlockOverlay.Clients.Tests.Fixtures;
using BlockOverlay.Clients.Tests.Guests;

namespace BlockOverlay.Clients.Tests.Durability;

/// <summary>
/// DESIGN.md, invariant 2 on Ceph, counted twice: a server serves instances X and Y of a store in an RBD
/// image of the one-node test cluster; Y's client leaves 64 MiB dirty (unflushed, its
/// connection open, background write-back held off by a long dirty age); X's client writes
/// 4 MiB and flushes. The bytes the cluster's OSDs received during X's write and flush must be
/// exactly what the server says its store wrote, and that must be X's 4 MiB plus one journal
/// batch: not one byte of Y's, which is still dirty afterwards.
/// </summary>
[Category("Ceph")]
public sealed class RbdFlushIsolationTests
{
    private const long MiB = 1 << 20;
    private const long Neighbour = 64 * MiB, Own = 4 * MiB;
    private const long JournalBatchAtMost = 4 * StoreWorkspace.Block;
    private static readonly string[] Instances = ["x", "y"];

    [Test]
    public async Task A_flush_sends_the_cluster_its_own_bytes_and_metadata_and_none_of_a_dirty_neighbours()
    {
        await using var ceph = await CephScope.EnterAsync();
        using var ws = new StoreWorkspace(ceph.NewImage("isolation").ToString());
        var evidence = new Evidence();
        ws.CreateStore("256M");
        ws.CreateInstance("x", null, "64M");
        ws.CreateInstance("y", null, "128M");
        // Y's data must stay dirty for the whole test: no write-back for its age.
        await File.WriteAllTextAsync(ws["config.json"], """{ "cache": { "maxDirtyAgeSeconds": 3600 } }""");
        using var server = StoreServer.Start(ws, tcp: false, [.. InstanceCounters.ServeArguments, "--config", ws["config.json"]]);
        evidence.Add("server", () => server.Log);
        using var neighbour = StoreNbdsh.Start(server, $"""
            y = connect("y")
            for i in range({Neighbour / MiB}):
                y.pwrite(b"\xbb" * {MiB}, i * {MiB})
            print("dirty", flush=True)
            sys.stdin.read()
            """);
        neighbour.WaitForLine("dirty", TimeSpan.FromSeconds(60));

        var (before, storeBefore) = InstanceCounters.ScrapeWithStore(server, Instances, evidence);
        long clusterBefore = await ceph.Cluster.ClientBytesWrittenAsync();
        StoreNbdsh.Run(server, $"""
            x = connect("x")
            for i in range({Own / MiB}):
                x.pwrite(b"\xaa" * {MiB}, i * {MiB})
            x.flush()
            """);
        var (after, storeAfter) = InstanceCounters.ScrapeWithStore(server, Instances, evidence);
        long clusterReceived = await ceph.Cluster.ClientBytesWrittenAsync() - clusterBefore;

        long storeWrote = storeAfter - storeBefore;
        long xData = after["x"].FlushDataBytes - before["x"].FlushDataBytes;
        long xMeta = after["x"].FlushMetaBytes - before["x"].FlushMetaBytes;
        await TestContext.Out.WriteLineAsync(
            $"X's flush: cluster received {clusterReceived} bytes, the store wrote {storeWrote} ({xData} of X's data, {xMeta} of X's journal records); Y holds {after["y"].DirtyBytes} dirty");
        Assert.Multiple(() =>
        {
            Assert.That(before["y"].DirtyBytes, Is.EqualTo(Neighbour), () => $"precondition: Y is dirty\n{evidence}");
            // The server's view.
            Assert.That(after["x"].Flushes - before["x"].Flushes, Is.EqualTo(1), () => $"X's flushes\n{evidence}");
            Assert.That(xData, Is.EqualTo(Own), () => $"X's flush data bytes\n{evidence}");
            Assert.That(xMeta, Is.Positive, () => $"X's flush metadata bytes\n{evidence}");
            Assert.That(storeWrote, Is.InRange(Own + xMeta, Own + JournalBatchAtMost), () => $"what the store wrote: X's data and one journal batch\n{evidence}");
            Assert.That(after["y"], Is.EqualTo(before["y"]), () => $"Y's counters, dirty bytes included\n{evidence}");
            // The cluster's view, which must agree to the byte.
            Assert.That(clusterReceived, Is.EqualTo(storeWrote), () => $"bytes the OSDs received against what the store says it wrote\n{evidence}");
            Assert.That(clusterReceived, Is.LessThan(Neighbour / 8), "far below Y's dirty bytes");
        });
        Assert.That(server.Terminate(), Is.Zero, evidence.ToString);
    }
}
