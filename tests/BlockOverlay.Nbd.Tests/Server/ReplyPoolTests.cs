using System.Buffers;
using System.Buffers.Binary;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>A connection's replies are reused once released, each time carrying its own request's cookie and data.</summary>
public class ReplyPoolTests
{
    [Test]
    public void A_released_success_is_reused_for_the_next_request_with_its_cookie()
    {
        var pool = new ReplyPool(new RequestBuffers(new ServerCounters()));
        var first = pool.Success(7);
        var inFlight = pool.Success(8);
        first.Release();
        var next = pool.Success(9);
        Assert.Multiple(() =>
        {
            Assert.That(next, Is.SameAs(first));
            Assert.That(inFlight, Is.Not.SameAs(first), "a reply not yet released is never handed out twice");
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(Encode(next).AsSpan(8)), Is.EqualTo(9UL));
        });
    }

    [Test]
    public void A_released_read_gives_its_buffer_back_and_is_reused_with_the_next_data()
    {
        var counters = new ServerCounters();
        var buffers = new RequestBuffers(counters);
        var pool = new ReplyPool(buffers);
        var first = pool.Read(1, 0, Filled(buffers, 0x11), 16, structured: false, dontFragment: false);
        first.Release();
        Assert.That(counters.RequestBufferBytes, Is.Zero, "the first read's buffer went back");

        var next = pool.Read(2, 0, Filled(buffers, 0x22), 16, structured: false, dontFragment: false);
        byte[] wire = Encode(next);
        Assert.Multiple(() =>
        {
            Assert.That(next, Is.SameAs(first));
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(wire.AsSpan(8)), Is.EqualTo(2UL));
            Assert.That(wire.AsSpan(16).IndexOfAnyExcept((byte)0x22), Is.EqualTo(-1), "the second read's data, 16 bytes of it");
            Assert.That(wire, Has.Length.EqualTo(16 + 16));
        });
        next.Release();
    }

    private static byte[] Filled(RequestBuffers buffers, byte value)
    {
        var buffer = buffers.Rent(16);
        buffer.AsSpan().Fill(value);
        return buffer;
    }

    private static byte[] Encode(OutgoingReply reply)
    {
        var writer = new ArrayBufferWriter<byte>();
        reply.WriteTo(writer);
        return writer.WrittenSpan.ToArray();
    }
}
