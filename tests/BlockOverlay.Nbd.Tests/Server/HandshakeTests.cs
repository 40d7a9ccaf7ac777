using System.Buffers.Binary;
using System.Text;
using BlockOverlay.Engine.Exports;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>The handshake phase, byte by byte, including what a well-behaved client never sends.</summary>
public class HandshakeTests
{
    private const uint Ack = 1, RepServer = 2, RepInfo = 3, RepMetaContext = 4;
    private const uint ErrUnsup = 0x80000001, ErrInvalid = 0x80000003, ErrUnknown = 0x80000006, ErrTooBig = 0x80000009;

    private TestServer _server = null!;

    [SetUp]
    public void Start() => _server = new TestServer(("disk", new MemoryExport(1 << 20)), ("other", new MemoryExport(4096)));

    [TearDown]
    public async Task Stop() => await _server.DisposeAsync();

    [Test]
    public async Task A_client_whose_go_was_acknowledged_is_attached_already()
    {
        // The count is taken before the ACK is written: a delete that checks for connections
        // after a client saw its GO accepted sees that client (and refuses), never cuts it.
        for (int round = 0; round < 20; round++)
        {
            using (var client = await _server.ConnectRawAsync())
            {
                await client.AttachAsync("disk");
                Assert.That(_server.Catalog.ConnectionsTo("disk"), Is.EqualTo(1), $"round {round}");
            }

            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (_server.Catalog.ConnectionsTo("disk") != 0 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5);
            }

            Assert.That(_server.Catalog.ConnectionsTo("disk"), Is.Zero, "a closed connection lets go");
        }
    }

    [Test]
    public async Task A_connection_that_ends_during_negotiation_after_its_choice_lets_go_of_the_export()
    {
        using (var client = await _server.ConnectRawAsync())
        {
            await client.StartAsync();
            await client.SendAsync(Option(7, GoData("disk")));   // GO, then hang up without reading the reply
        }

        // Until the server has accepted and ended the connection: it may not even have read the
        // GO when the client hung up, so "no connection to the export yet" proves nothing.
        bool Ended() => _server.Counters.ConnectionsOpened == 1 && _server.Counters.ConnectionsOpen == 0;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!Ended() && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }

        Assert.That(Ended(), Is.True, "the connection was accepted and ended");
        Assert.That(_server.Catalog.ConnectionsTo("disk"), Is.Zero);
        Assert.That(_server.Catalog.Remove("disk", disconnect: false), Is.Not.Null, "nothing holds it");
    }

    [Test]
    public async Task The_greeting_offers_fixed_newstyle_and_no_zeroes()
    {
        using var client = await _server.ConnectRawAsync();
        var greeting = await client.ReadAsync(18);
        Assert.That(Encoding.ASCII.GetString(greeting, 0, 8), Is.EqualTo("NBDMAGIC"));
        Assert.That(Encoding.ASCII.GetString(greeting, 8, 8), Is.EqualTo("IHAVEOPT"));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16)), Is.EqualTo(3));
    }

    [Test]
    public async Task Unknown_client_flags_close_the_connection()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync(clientFlags: 1 | 4);
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task An_unknown_option_gets_err_unsup_and_the_next_option_still_parses()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(0xBEEF, [1, 2, 3, 4, 5]), Option(3, []));
        var unknown = await client.ReadOptionReplyAsync();
        Assert.That((unknown.Option, unknown.Type), Is.EqualTo((0xBEEFu, ErrUnsup)));
        var list = await client.ReadOptionRepliesAsync();
        Assert.That(list.Select(r => r.Type), Is.EqualTo(new[] { RepServer, RepServer, Ack }));
        Assert.That(Encoding.UTF8.GetString(list[0].Data, 4, 4), Is.EqualTo("disk"));
    }

    [Test]
    public async Task Starttls_is_refused_with_err_unsup()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(5, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrUnsup));
    }

    [Test]
    public async Task Option_data_over_the_limit_is_skipped_unread_and_answered_with_err_too_big()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        var huge = new byte[1 << 20];
        await client.SendAsync(Option(7, huge), Option(3, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrTooBig));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack), "the stream stayed in sync");
    }

    [Test]
    public async Task List_with_data_is_invalid()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(3, [0]));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrInvalid));
    }

    [Test]
    public async Task A_bad_option_magic_closes_the_connection()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Concat(U64(0x0102030405060708), U32(3), U32(0)));
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task Go_to_an_unknown_export_gets_err_unknown_and_a_second_go_succeeds()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(7, GoData("missing")));
        var refused = await client.ReadOptionReplyAsync();
        Assert.That(refused.Type, Is.EqualTo(ErrUnknown));
        Assert.That(Encoding.UTF8.GetString(refused.Data), Does.Contain("missing"));

        await client.SendAsync(Option(7, GoData("disk", 1, 2, 3)));
        var replies = await client.ReadOptionRepliesAsync();
        var infos = replies.Where(r => r.Type == RepInfo).ToDictionary(r => BinaryPrimitives.ReadUInt16BigEndian(r.Data), r => r.Data);
        Assert.That(replies[^1].Type, Is.EqualTo(Ack));
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(infos[0].AsSpan(2)), Is.EqualTo(1UL << 20), "INFO_EXPORT size");
        Assert.That(Encoding.UTF8.GetString(infos[1].AsSpan(2)), Is.EqualTo("disk"), "INFO_NAME");
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(2)), Is.EqualTo(1u), "minimum block size");
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(6)), Is.EqualTo(4096u), "preferred block size");
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(10)), Is.EqualTo(32u << 20), "maximum payload");
    }

    [Test]
    public async Task The_empty_export_name_is_the_first_export()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(6, GoData("", 1)));
        var replies = await client.ReadOptionRepliesAsync();
        var name = replies.First(r => r.Type == RepInfo && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == 1);
        Assert.That(Encoding.UTF8.GetString(name.Data.AsSpan(2)), Is.EqualTo("disk"));
    }

    [TestCase(3u, 10)]
    [TestCase(1u, 10 + 124)]
    public async Task Export_name_replies_with_size_and_flags_and_zeroes_unless_no_zeroes(uint clientFlags, int replyLength)
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync(clientFlags);
        await client.SendAsync(Option(1, Encoding.UTF8.GetBytes("other")));
        var reply = await client.ReadAsync(replyLength);
        Assert.That(BinaryPrimitives.ReadUInt64BigEndian(reply), Is.EqualTo(4096UL));
        Assert.That(reply.AsSpan(10).ContainsAnyExcept((byte)0), Is.False);

        // Transmission works right after: read one byte.
        await client.SendAsync(Request(0, 0, 77, 0, 1));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 77UL)));
        Assert.That(await client.ReadAsync(1), Is.EqualTo(new byte[] { 0 }));
    }

    [Test]
    public async Task Export_name_of_an_unknown_export_closes_the_connection()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(1, Encoding.UTF8.GetBytes("missing")));
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task Meta_contexts_need_structured_replies_first()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(10, MetaData("disk", "base:allocation")));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrInvalid));
    }

    [Test]
    public async Task List_meta_context_matches_the_base_namespace_and_set_selects_exact_names()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(8, []));
        await client.ReadOptionRepliesAsync();

        await client.SendAsync(Option(9, MetaData("disk", "base:")));
        var listed = await client.ReadOptionRepliesAsync();
        Assert.That(listed.Select(r => r.Type), Is.EqualTo(new[] { RepMetaContext, Ack }));
        Assert.That(Encoding.UTF8.GetString(listed[0].Data.AsSpan(4)), Is.EqualTo("base:allocation"));

        await client.SendAsync(Option(10, MetaData("disk", "x-unknown:thing", "base:allocation")));
        var set = await client.ReadOptionRepliesAsync();
        Assert.That(set.Select(r => r.Type), Is.EqualTo(new[] { RepMetaContext, Ack }));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(set[0].Data), Is.Not.Zero, "a selected context has a non-zero id");

        await client.SendAsync(Option(10, MetaData("missing", "base:allocation")));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrUnknown));
    }

    [Test]
    public async Task Abort_is_acknowledged()
    {
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(2, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(Ack));
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }
}
