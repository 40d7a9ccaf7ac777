using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Durability;

/// <summary>
/// A store on Ceph RBD (the one-node test cluster), served, taken over and fenced: server A
/// serves two instances; a client writes and flushes on both, and leaves more unflushed in
/// A's cache; A is frozen (SIGSTOP, as a hung or cut-off host); server B starts with
/// <c>--takeover</c>, serves both, and every flushed write reads back. A is thawed: its next
/// write to the image (the write-back of what it still held) is refused, it exits with a
/// message saying it was fenced, and what B serves does not change. The base is never written.
/// </summary>
[Category("Ceph")]
public sealed class RbdTakeoverTests
{
    private const int BaseSize = 4 << 20;
    private const int PayloadSize = 1 << 20;

    // (offset, length, offset in the payload), unaligned on purpose.
    private static readonly long[][] FlushedOnOne = [[1000, 5000, 0], [131071, 200003, 10001], [BaseSize - 777, 777, 400000]];
    private static readonly long[][] FlushedOnTwo = [[777, 9000, 500000], [(2 << 20) + 1, 70000, 700000]];

    // Acknowledged by A, never flushed: still in A's cache when it is frozen.
    private static readonly long[][] UnflushedOnOne = [[(3 << 20) + 5, 40000, 800000]];

    [Test]
    public async Task A_frozen_server_is_taken_over_and_fenced_and_every_flushed_write_survives()
    {
        await using var ceph = await CephScope.EnterAsync();
        using var ws = new StoreWorkspace(ceph.NewImage("takeover").ToString());
        ws.CreateStore("64M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed: 21);
        var baseHash = StoreWorkspace.Sha256(ws["base.raw"]);
        var payload = ws.WriteRandomFile("payload.bin", PayloadSize, seed: 22);
        ws.CreateInstance("one", ws["base.raw"]);
        ws.CreateInstance("two", ws["base.raw"]);

        using var serverA = StoreServer.Start(ws);
        using var client = StoreNbdsh.Start(serverA, $$"""
            one, two = connect("one"), connect("two")
            for off, length, at in {{JsonSerializer.Serialize(FlushedOnOne)}}:
                one.pwrite(PAYLOAD[at:at + length], off)
            one.flush()
            for off, length, at in {{JsonSerializer.Serialize(FlushedOnTwo)}}:
                two.pwrite(PAYLOAD[at:at + length], off)
            two.flush()
            for off, length, at in {{JsonSerializer.Serialize(UnflushedOnOne)}}:
                one.pwrite(PAYLOAD[at:at + length], off)
            print("acked", flush=True)
            sys.stdin.read()
            """, ws["payload.bin"]);
        client.WaitForLine("acked", TimeSpan.FromSeconds(30));
        serverA.Pause();

        using var serverB = StoreServer.StartOn(ws, "nbd-b.sock", tcp: false, "--takeover");
        var one = ExportContent.CopyOut(serverB, ws, "one");
        var two = ExportContent.CopyOut(serverB, ws, "two");
        var flushedOne = Apply(baseImage, payload, FlushedOnOne);
        Assert.Multiple(() =>
        {
            Assert.That(() => serverB.Log, Does.Contain("after a crash").After(5000, 20), "B recovered the store A left open");
            Assert.That(ExportContent.FirstDifference(one, flushedOne), Is.Null, "one on B: base + its flushed writes");
            Assert.That(ExportContent.FirstDifference(two, Apply(baseImage, payload, FlushedOnTwo)), Is.Null, "two on B: base + its flushed writes");
        });

        serverA.Resume();
        int exitA = serverA.WaitForExit(TimeSpan.FromSeconds(60));
        var oneAfter = ExportContent.CopyOut(serverB, ws, "one");
        Assert.Multiple(() =>
        {
            Assert.That(exitA, Is.Not.Zero, serverA.ToString);
            Assert.That(() => serverA.Log, Does.Contain("taken over by another server").And.Contain("fenced").After(5000, 20), serverA.ToString);
            Assert.That(ExportContent.FirstDifference(oneAfter, flushedOne), Is.Null, "A's refused write-back never reached the image");
            Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
        });
        Assert.That(serverB.Terminate(), Is.Zero, serverB.ToString);
    }

    private static byte[] Apply(byte[] image, byte[] payload, long[][] writes)
    {
        var result = (byte[])image.Clone();
        foreach (var write in writes)
        {
            Array.Copy(payload, write[2], result, write[0], write[1]);
        }

        return result;
    }
}
