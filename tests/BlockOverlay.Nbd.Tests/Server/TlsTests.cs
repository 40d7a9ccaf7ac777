using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Nbd.Server;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// NBD_OPT_STARTTLS byte by byte, as the spec's TLS section says: what is refused before TLS
/// when it is required, what is refused about STARTTLS itself, the upgrade on the same socket
/// with nothing negotiated before it kept, and client certificates.
/// </summary>
public class TlsTests
{
    private const uint ExportName = 1, Abort = 2, List = 3, StartTls = 5, Info = 6, Go = 7, StructuredReply = 8, SetMetaContext = 10;
    private const uint Ack = 1, RepServer = 2, ErrUnsup = 0x80000001, ErrInvalid = 0x80000003, ErrTlsReqd = 0x80000005;
    private const ushort Read = 0, Write = 1;

    private static readonly TestCertificates Certificates = new();

    private TestServer? _server;

    [TearDown]
    public async Task Stop()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            _server = null;
        }
    }

    [Test]
    public async Task With_tls_required_every_option_but_starttls_and_abort_gets_tls_reqd_and_its_data_is_skipped()
    {
        using var client = await ConnectAsync(TlsMode.Require);
        await client.SendAsync(Option(List, []), Option(StructuredReply, []), Option(Info, GoData("disk")),
            Option(Go, GoData("disk")), Option(0xBEEF, [1, 2, 3]), Option(SetMetaContext, MetaData("disk", "base:")));

        foreach (uint option in new uint[] { List, StructuredReply, Info, Go, 0xBEEF, SetMetaContext })
        {
            var reply = await client.ReadOptionReplyAsync();
            Assert.That((reply.Option, reply.Type), Is.EqualTo((option, ErrTlsReqd)));
            Assert.That(Encoding.UTF8.GetString(reply.Data), Does.Contain("requires TLS"));
        }

        await client.SendAsync(Option(Abort, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(Ack), "ABORT is answered without TLS");
    }

    [Test]
    public async Task With_tls_required_export_name_before_starttls_ends_the_connection()
    {
        using var client = await ConnectAsync(TlsMode.Require);
        await client.SendAsync(Option(ExportName, Encoding.UTF8.GetBytes("disk")));
        Assert.That(await client.IsClosedByServerAsync(), Is.True, "EXPORT_NAME has no error reply");
    }

    [Test]
    public async Task With_tls_required_a_client_without_fixed_newstyle_is_closed()
    {
        _server = new TestServer(new NbdServerOptions { Tls = Certificates.Tls(TlsMode.Require) }, ("disk", new MemoryExport(1 << 20)));
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync(clientFlags: 0);
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task After_starttls_options_and_transmission_run_inside_tls()
    {
        using var client = await ConnectAsync(TlsMode.Require);
        await StartTlsAsync(client);

        await client.SendAsync(Option(List, []));
        var list = await client.ReadOptionRepliesAsync();
        Assert.That(list.Select(r => r.Type), Is.EqualTo(new[] { RepServer, Ack }));

        await client.SendAsync(Option(Go, GoData("disk")));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack));
        byte[] data = [.. Enumerable.Range(0, 8192).Select(i => (byte)i)];
        await client.SendAsync(Request(0, Write, 1, 4096, (uint)data.Length), data, Request(0, Read, 2, 4096, (uint)data.Length));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 1UL)));
        Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, 2UL)));
        Assert.That(await client.ReadAsync(data.Length), Is.EqualTo(data));
    }

    [Test]
    public async Task A_second_starttls_is_invalid_and_negotiation_goes_on_inside_tls()
    {
        using var client = await ConnectAsync(TlsMode.On);
        await StartTlsAsync(client);

        await client.SendAsync(Option(StartTls, []), Option(List, []));
        var again = await client.ReadOptionReplyAsync();
        Assert.That((again.Option, again.Type), Is.EqualTo((StartTls, ErrInvalid)));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack));
    }

    [Test]
    public async Task Starttls_with_data_is_invalid_and_the_connection_stays_plain()
    {
        using var client = await ConnectAsync(TlsMode.On);
        await client.SendAsync(Option(StartTls, [1, 2, 3]), Option(List, []));
        var reply = await client.ReadOptionReplyAsync();
        Assert.That((reply.Option, reply.Type), Is.EqualTo((StartTls, ErrInvalid)));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack), "the next option is read in the clear");
    }

    [Test]
    public async Task Structured_replies_chosen_before_starttls_are_forgotten()
    {
        using var client = await ConnectAsync(TlsMode.On);
        await client.SendAsync(Option(StructuredReply, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(Ack));
        await StartTlsAsync(client);

        // Meta contexts need structured replies, which must be negotiated again inside TLS.
        await client.SendAsync(Option(SetMetaContext, MetaData("disk", "base:allocation")));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrInvalid));
    }

    [Test]
    public async Task Bytes_sent_after_starttls_before_its_reply_drop_the_connection()
    {
        using var client = await ConnectAsync(TlsMode.On);
        // One write: the option and what follows it arrive together, so the server's reader holds both.
        await client.SendAsync(Concat(Option(StartTls, []), Option(List, [])));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(Ack));
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
        Assert.That(_server!.Log, Has.Some.Contains("without waiting for its reply"));
    }

    [Test]
    public async Task A_client_that_stalls_in_the_tls_handshake_is_closed_at_the_handshake_limit()
    {
        // The limit covers the whole handshake, the STARTTLS reply too: 2 s, not less, so a
        // loaded machine still gets the ACK out before it (300 ms failed now and then under load).
        _server = new TestServer(new NbdServerOptions { Tls = Certificates.Tls(TlsMode.Require), HandshakeTimeout = TimeSpan.FromSeconds(2) },
            ("disk", new MemoryExport(1 << 20)));
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(StartTls, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(Ack));

        Assert.That(await client.IsClosedByServerAsync(), Is.True, "no ClientHello ever comes");
        Assert.That(_server.Counters.HandshakeTimeouts, Is.EqualTo(1));
    }

    [Test]
    public async Task With_tls_on_a_plain_client_is_served()
    {
        using var client = await ConnectAsync(TlsMode.On);
        await client.SendAsync(Option(Go, GoData("disk")));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack));
    }

    [Test]
    public async Task Without_tls_starttls_is_unsupported()
    {
        _server = new TestServer(("disk", new MemoryExport(1 << 20)));
        using var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        await client.SendAsync(Option(StartTls, []));
        Assert.That((await client.ReadOptionReplyAsync()).Type, Is.EqualTo(ErrUnsup));
    }

    [Test]
    public async Task A_verified_client_certificate_is_the_connections_peer()
    {
        using var client = await ConnectAsync(TlsMode.Require, verifyClients: true);
        await StartTlsAsync(client, Certificates.Client);
        await client.SendAsync(Option(List, []));
        Assert.That((await client.ReadOptionRepliesAsync())[^1].Type, Is.EqualTo(Ack));
        Assert.That(_server!.Log, Has.Some.Contains("TLS started (client certificate: CN=tenant-a, O=Example)"));
    }

    [Test]
    public async Task Without_a_verified_client_certificate_the_connection_is_dropped()
    {
        foreach (var certificate in new[] { null, Certificates.StrangersClient })
        {
            using var client = await ConnectAsync(TlsMode.Require, verifyClients: true);
            Assert.That(await HandshakeThenListAsync(client, certificate), Is.False,
                certificate is null ? "no certificate" : "a certificate of another authority");
        }

        // The client may see the refusal (a TLS alert) before the server has logged it.
        Assert.That(() => _server!.Log.Count(line => line.Contains("the TLS handshake failed", StringComparison.Ordinal)), Is.EqualTo(2).After(5000, 20));
    }

    /// <summary>A server with one export and a client past the greeting; the client is disposed with the server's socket.</summary>
    private async Task<RawNbdClient> ConnectAsync(TlsMode mode, bool verifyClients = false)
    {
        _server ??= new TestServer(new NbdServerOptions { Tls = Certificates.Tls(mode, verifyClients) }, ("disk", new MemoryExport(1 << 20)));
        var client = await _server.ConnectRawAsync();
        await client.StartAsync();
        return client;
    }

    private static async Task StartTlsAsync(RawNbdClient client, X509Certificate2? certificate = null)
    {
        await client.SendAsync(Option(StartTls, []));
        var reply = await client.ReadOptionReplyAsync();
        Assert.That((reply.Option, reply.Type), Is.EqualTo((StartTls, Ack)));
        await client.StartTlsAsync(Certificates.Server, certificate);
    }

    /// <summary>
    /// Whether the server let the client in. With TLS 1.3 the client's side of the handshake
    /// may finish before the server has judged its certificate, so a refusal shows either
    /// there or at the first option.
    /// </summary>
    private static async Task<bool> HandshakeThenListAsync(RawNbdClient client, X509Certificate2? certificate)
    {
        try
        {
            await StartTlsAsync(client, certificate);
            await client.SendAsync(Option(List, []));
            await client.ReadOptionRepliesAsync();
            return true;
        }
        catch (Exception e) when (e is AuthenticationException or IOException or EndOfStreamException)
        {
            return false;
        }
    }
}
