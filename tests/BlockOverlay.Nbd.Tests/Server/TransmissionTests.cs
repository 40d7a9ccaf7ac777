using System.Buffers.Binary;
using BlockOverlay.Engine.Exports;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>The transmission phase with raw bytes: ordering, bad input, isolation between connections.</summary>
public class TransmissionTests
{
    private const ushort Read = 0, Write = 1, Disc = 2;
    private const uint EInval = 22;

    private TestServer _server = null!;
    private GatedExport _gated = null!;

    [SetUp]
    public void Start()
    {
        _gated = new GatedExport(1 << 20, gatedOffset: 0);
        _server = new TestServer(("disk", new MemoryExport(64 << 20)), ("gated", _gated));
    }

    [TearDown]
    public async Task Stop()
    {
        await _gated.DisposeAsync(); // opens the gate, so no request is left waiting
        await _server.DisposeAsync();
    }

    [Test]
    public async Task A_slow_request_does_not_hold_up_the_ones_behind_it()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("gated");
        byte[] data = [1, 2, 3, 4];
        await client.SendAsync(Request(0, Read, 1, 0, 4), Request(0, Write, 2, 4096, 4), data, Request(0, Read, 3, 4096, 4));

        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 2UL)), "the write overtakes the stuck read");
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 3UL)));
        Assert.That(await client.ReadAsync(4), Is.EqualTo(data));

        _gated.Open();
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 1UL)));
        Assert.That(await client.ReadAsync(4), Is.EqualTo(new byte[4]));
    }

    [Test]
    public async Task Disc_waits_for_requests_in_flight_before_closing()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("gated");
        await client.SendAsync(Request(0, Read, 1, 0, 4), Request(0, Disc, 2, 0, 0));
        await Task.Delay(200);
        _gated.Open();
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 1UL)));
        await client.ReadAsync(4);
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task A_bad_request_magic_drops_only_that_connection()
    {
        using var good = await _server.ConnectRawAsync();
        using var bad = await _server.ConnectRawAsync();
        await good.AttachAsync("disk");
        await bad.AttachAsync("disk");

        var garbage = Request(0, Read, 1, 0, 4);
        garbage[0] = 0xFF;
        await bad.SendAsync(garbage);
        Assert.That(await bad.IsClosedByServerAsync(), Is.True);

        await good.SendAsync(Request(0, Write, 5, 0, 3), [9, 9, 9], Request(0, Read, 6, 0, 3));
        Assert.That(await good.ReadSimpleReplyAsync(), Is.EqualTo((0u, 5UL)));
        Assert.That(await good.ReadSimpleReplyAsync(), Is.EqualTo((0u, 6UL)));
        Assert.That(await good.ReadAsync(3), Is.EqualTo(new byte[] { 9, 9, 9 }));
        Assert.That(_server.Log, Has.Some.Contains("protocol violation"));
    }

    [Test]
    public async Task An_oversized_write_is_skipped_as_it_arrives_and_the_connection_goes_on()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("disk");
        const uint length = (32 << 20) + 1;
        var sending = client.SendAsync(Request(0, Write, 1, 0, length), new byte[length], Request(0, Read, 2, 0, 1));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((EInval, 1UL)));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 2UL)));
        Assert.That(await client.ReadAsync(1), Is.EqualTo(new byte[1]), "nothing of the refused write landed");
        await sending;
    }

    [Test]
    public async Task A_write_past_the_end_consumes_its_payload_and_gets_enospc()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("disk");
        await client.SendAsync(Request(0, Write, 1, (64 << 20) - 2, 4), [1, 2, 3, 4], Request(0, Read, 2, 0, 1));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((28u, 1UL)));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 2UL)));
    }

    [Test]
    public async Task A_rejected_structured_read_gets_an_error_chunk_and_never_a_simple_reply()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("disk", structured: true);
        await client.SendAsync(Request(0x8000, Read, 42, 0, 1));
        var chunk = await client.ReadAsync(20);
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(chunk), Is.EqualTo(0x668e33efu));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(4)), Is.EqualTo(1), "DONE");
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(6)), Is.EqualTo(0x8001), "ERROR");
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(chunk.AsSpan(8)), Is.EqualTo(42UL));
        var payload = await client.ReadAsync((int)BinaryPrimitives.ReadUInt32BigEndian(chunk.AsSpan(16)));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(payload), Is.EqualTo(EInval));
    }

    [Test]
    public async Task Every_rejected_request_is_logged_with_command_offset_and_length()
    {
        using var client = await _server.ConnectRawAsync();
        await client.AttachAsync("disk");
        await client.SendAsync(Request(0, 99, 1, 12345, 678));
        Assert.That((await client.ReadSimpleReplyAsync()).Error, Is.EqualTo(EInval));
        Assert.That(_server.Log, Has.Some.Contains("rejected UNKNOWN(99) offset=12345 length=678"));
    }

    [Test]
    public async Task A_connection_that_ends_inside_a_request_leaves_the_server_serving()
    {
        using (var client = await _server.ConnectRawAsync())
        {
            await client.AttachAsync("disk");
            await client.SendAsync(Request(0, Write, 1, 0, 4096), new byte[100]);
        }

        using var next = await _server.ConnectRawAsync();
        await next.AttachAsync("disk");
        await next.SendAsync(Request(0, Read, 1, 0, 4));
        Assert.That(await next.ReadSimpleReplyAsync(), Is.EqualTo((0u, 1UL)));
    }
}
