using BlockOverlay.Exports;
using BlockOverlay.LibNbd;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A WRITE offered to an export straight from the receive buffers
/// (<see cref="IDirectWriteExport"/>) ends as any other: the bytes land whether the export
/// takes or declines it, in however many pieces they arrived; a failure it reports is the
/// client's error, a throw is a bug's EIO, and the connection reads the next request exactly
/// where the payload ended.
/// </summary>
public class DirectWriteTests
{
    private const int EIO = 5;
    private const int ENOSPC = 28;

    [Test]
    public async Task Writes_taken_and_declined_all_land_byte_for_byte()
    {
        const int disk = 8 << 20;
        // Every third 4 KiB offset declined: both ways, interleaved in one pipelined stream.
        var export = new DirectWriteExport(disk, offset => offset / 4096 % 3 == 0 ? DirectWriteAnswer.Decline : DirectWriteAnswer.Take);
        await using var server = new TestServer(("disk", export));
        using var client = Connect(server, "disk");

        var expected = new byte[disk];
        var buffers = new List<NativeBuffer>();
        var cookies = new List<long>();
        int[] lengths = [4096, 512, 65536, 1 << 20, 4096 * 3, 1000];
        long offset = 0, sent = 0;
        for (int i = 0; offset + (1 << 20) <= disk; i++)
        {
            int length = lengths[i % lengths.Length];
            var bytes = Pattern(length, i);
            bytes.CopyTo(expected, offset);
            var buffer = new NativeBuffer(length);
            bytes.CopyTo(buffer.Span);
            buffers.Add(buffer);
            cookies.Add(client.AioPwrite(buffer, (ulong)offset));
            offset += length + 4096;
            sent += length;
        }

        cookies.ForEach(client.WaitForCompletion);
        buffers.ForEach(b => b.Dispose());

        Assert.Multiple(() =>
        {
            Assert.That(client.Read(disk, 0), Is.EqualTo(expected), "every write landed where it was sent");
            Assert.That(export.Taken, Is.GreaterThan(0), "some writes were taken from the receive buffers");
            Assert.That(export.Declined, Is.GreaterThan(0), "some writes were declined and copied");
            Assert.That(export.MultiSegment, Is.GreaterThan(0), "some payloads spanned pieces of the receive buffers");
            Assert.That(server.Counters.BytesWritten, Is.EqualTo(sent), "each write counted once, either way");
        });
    }

    [Test]
    public async Task A_failure_through_the_completion_is_the_clients_error_and_a_throw_is_a_bugs_EIO()
    {
        var export = new DirectWriteExport(1 << 20, offset => offset switch
        {
            4096 => DirectWriteAnswer.Fail,
            8192 => DirectWriteAnswer.Throw,
            _ => DirectWriteAnswer.Take,
        });
        await using var server = new TestServer(("disk", export));
        using var client = Connect(server, "disk");

        Assert.Multiple(() =>
        {
            Assert.That(Assert.Throws<NbdException>(() => client.Pwrite(Pattern(4096, 1), 4096))!.Errno, Is.EqualTo(ENOSPC));
            Assert.That(Assert.Throws<NbdException>(() => client.Pwrite(Pattern(4096, 2), 8192))!.Errno, Is.EqualTo(EIO));
        });

        // The connection goes on, reading the next request where each refused payload ended.
        client.Pwrite(Pattern(4096, 3), 0, CommandFlags.Fua);
        Assert.Multiple(() =>
        {
            Assert.That(client.Read(4096, 0), Is.EqualTo(Pattern(4096, 3)));
            Assert.That(client.Read(8192, 4096), Is.EqualTo(new byte[8192]), "neither refused write changed anything");
            Assert.That(export.Flags, Is.EqualTo(new[] { WriteFlags.None, WriteFlags.None, WriteFlags.Fua }), "FUA is passed on");
            Assert.That(server.Log.Where(line => line.StartsWith("Error:", StringComparison.Ordinal)).ToList(),
                Has.Count.EqualTo(1).And.Some.Contain("a bug in TryWriteNow"), "the throw is logged as a bug, once");
        });
    }
}
