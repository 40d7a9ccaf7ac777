using BlockOverlay.Engine.Exports;
using BlockOverlay.LibNbd;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A paced export (<see cref="BlockOverlay.Exports.IPacedExport"/>) pushes back through its
/// connection's reader: nothing past a request waiting for admission is read, flushes are not
/// paced, and a connection to another export is not held.
/// </summary>
public class PacingTests
{
    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        for (var end = DateTime.UtcNow.AddSeconds(10); !condition(); await Task.Delay(10))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(end), "timed out waiting until " + what);
        }
    }

    [Test]
    public async Task The_reader_waits_for_admission_before_the_payload_and_other_exports_are_served()
    {
        var paced = new PacedExport(1 << 20);
        await using var server = new TestServer(("paced", paced), ("free", new MemoryExport(1 << 20)));
        using var client = Connect(server, "paced");
        using var first = new NativeBuffer(4096);
        using var second = new NativeBuffer(4096);
        Pattern(4096, 1).CopyTo(first.Span);
        Pattern(4096, 2).CopyTo(second.Span);
        long[] cookies = [client.AioPwrite(first, 0), client.AioPwrite(second, 4096), client.AioZero(8192, 8192), client.AioFlush()];
        var completing = Task.Run(() => Array.ForEach(cookies, client.WaitForCompletion));

        await WaitUntilAsync(() => !paced.Asked.IsEmpty, "the first write asks to be admitted");
        await Task.Delay(200);
        Assert.That(paced.Asked, Is.EqualTo(new long[] { 4096 }), "nothing past the waiting request is read");
        Assert.That(server.Counters.BytesWritten, Is.Zero, "the waiting write has not started");

        using (var neighbour = Connect(server, "free"))
        {
            neighbour.Pwrite(Pattern(4096, 3), 0);
            Assert.That(neighbour.Read(4096, 0), Is.EqualTo(Pattern(4096, 3)), "another export's connection is not held");
        }

        paced.Admit(1);
        await WaitUntilAsync(() => paced.Asked.Count == 2, "the next write is read");
        paced.Admit(2);
        await completing.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(paced.Asked, Is.EqualTo(new long[] { 4096, 4096, 0 }), "writes ask for their length, a zero for none, a flush is not paced");
        paced.Admit(1);
        Assert.That(client.Read(4096, 4096), Is.EqualTo(Pattern(4096, 2)));
        Assert.That(paced.Asked.Last(), Is.EqualTo(4096), "a read asks for its length");
    }
}
