using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Bases;

/// <summary>
/// Bases in Ceph: <c>--base rbd:POOL/IMAGE@SNAP</c>, a snapshot read through librbd, under an
/// instance of a store file or of a store on RBD. The instance reads the snapshot (not the
/// image's head, which moves on), keeps its own writes over it across a restart, and is refused
/// once the snapshot is removed and made again under the same name (a new snapshot id: its
/// identity changed). An image without a snapshot is refused as a base; <c>base add</c> names
/// a snapshot on a store file and refuses a store on RBD, which has no place for the names.
/// </summary>
[Category("Ceph")]
public sealed class RbdBaseTests
{
    private const int BaseSize = 3 << 20;
    private const int WriteAt = 12345;

    [TestCase("file")]
    [TestCase("rbd")]
    public async Task An_instance_reads_its_snapshot_base_and_is_refused_when_the_snapshot_is_made_again(string store)
    {
        await using var ceph = await CephScope.EnterAsync();
        using var ws = new StoreWorkspace(store == "rbd" ? ceph.NewImage("store").ToString() : null);
        ws.CreateStore("64M");
        var v1 = ws.WriteRandomFile("v1.raw", BaseSize, seed: 31);
        var snapshot = ceph.ImportSnapshot("base", ws["v1.raw"]);
        var image = snapshot with { Snapshot = null };
        ws.CreateInstance("one", snapshot.ToString());
        ws.CreateInstance("blank", null, "1M");
        ws.WriteRandomFile("v2.raw", BaseSize, seed: 32);
        await ceph.OverwriteAsync(image, ws["v2.raw"]); // the image moves on; its snapshot does not
        var payload = ws.WriteRandomFile("payload.bin", 100000, seed: 33);
        var expected = (byte[])v1.Clone();
        Array.Copy(payload, 0, expected, WriteAt, payload.Length);

        using (var server = StoreServer.Start(ws))
        {
            Assert.That(ExportContent.CopyOut(server, ws, "one"), Is.EqualTo(v1), "the instance reads its snapshot");
            StoreNbdsh.Run(server, $"""
                one = connect("one")
                one.pwrite(PAYLOAD, {WriteAt})
                one.flush()
                """, ws["payload.bin"]);
            Assert.That(ws.ListInstances().Single(r => r[0] == "one"), Does.Contain(snapshot.ToString()), "instance list names the base");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        using (var server = StoreServer.Start(ws))
        {
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "one"), expected), Is.Null, "after a restart: the snapshot and the flushed write");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        ceph.RemoveSnapshot(snapshot);
        ceph.Snapshot(image, snapshot.Snapshot!);
        using (var server = StoreServer.Start(ws))
        {
            var refused = server.Log.Split('\n').Where(l => l.Contains("'one'", StringComparison.Ordinal)).ToList();
            Assert.That(refused, Has.Count.EqualTo(1), server.ToString);
            Assert.That(refused[0], Does.Contain("instance 'one' is not served").And.Contain(snapshot.ToString()).And.Contain("changed"), server.ToString);
            Assert.That(ExportContent.CopyOut(server, ws, "blank"), Is.EqualTo(new byte[1 << 20]), "the other instance is served");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }
    }

    [Test]
    public async Task An_image_is_refused_as_a_base_and_only_its_snapshot_is_taken()
    {
        await using var ceph = await CephScope.EnterAsync();
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("base.raw", BaseSize, seed: 34);
        var snapshot = ceph.ImportSnapshot("base", ws["base.raw"]);
        var image = (snapshot with { Snapshot = null }).ToString();

        var refused = StoreWorkspace.Cli("instance", "create", "one", "--base", image, "--store", ws.StorePath);
        BaseTestKit.AssertOneLineError(refused, "instance create", "a base on RBD is a snapshot");
        var missing = StoreWorkspace.Cli("instance", "create", "one", "--base", image + "@nosuch", "--store", ws.StorePath);
        BaseTestKit.AssertOneLineError(missing, "instance create", "no such RBD image or snapshot");
        Assert.That(ws.ListInstances(), Is.Empty, "a refused create made nothing");

        BaseTestKit.Add(ws, "golden", snapshot.ToString());
        ws.CreateInstance("one", "golden");
        Assert.That(BaseTestKit.List(ws).Single(), Is.EqualTo(new[] { "golden", "3M", snapshot.ToString(), "1" }), "base list: name, size, address, users");

        using var rbdStore = new StoreWorkspace(ceph.NewImage("store").ToString());
        rbdStore.CreateStore("32M");
        var add = StoreWorkspace.Cli("base", "add", "golden", snapshot.ToString(), "--store", rbdStore.StorePath);
        BaseTestKit.AssertOneLineError(add, "base add", "is a store on Ceph");
    }
}
