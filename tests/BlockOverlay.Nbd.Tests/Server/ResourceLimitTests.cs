using BlockOverlay.Engine.Exports;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// What a hostile or broken client controls is bounded: the memory its pipelined requests and
/// unread replies hold, and how long it may sit in the handshake.
/// </summary>
public class ResourceLimitTests
{
    private const ushort Read = 0, Write = 1, Unknown = 0x55;
    private const uint MiB = 1 << 20;

    [Test]
    public async Task A_client_that_never_reads_its_replies_holds_no_more_than_its_budget()
    {
        var options = new NbdServerOptions { MaxInFlightBytes = 4 * MiB };
        await using var server = new TestServer(options, ("disk", new MemoryExport(64 * MiB)));
        using var client = await server.ConnectRawAsync();
        await client.AttachAsync("disk");

        // 64 MiB of reads asked for in 1.8 KB of requests, and no reply read.
        const int requests = 64;
        await client.SendAsync([.. Enumerable.Range(0, requests).Select(i => Request(0, Read, (ulong)i, (ulong)i * MiB, MiB))]);

        // Replies count against the budget until written to the socket (whose buffers hold
        // well under 1 MiB on a unix socket), so the server stops reading requests.
        long taken = await Waits.SettledAsync(() => server.Counters.RequestsOf(NbdCommand.Read));
        Assert.That(taken, Is.LessThanOrEqualTo(8), "READs the server took on while none of their replies was read");

        for (int i = 0; i < requests; i++)
        {
            var (error, _) = await client.ReadSimpleReplyAsync();
            Assert.That(error, Is.Zero);
            await client.ReadAsync((int)MiB);
        }

        Assert.That(server.Counters.RequestsOf(NbdCommand.Read), Is.EqualTo(requests), "every request was served once read");
    }

    [Test]
    public async Task A_clients_connections_together_hold_no_more_than_the_clients_budget()
    {
        // Every connection of this test is one client (the same uid on a unix socket).
        var options = new NbdServerOptions { MaxInFlightBytes = 4 * MiB, MaxInFlightBytesPerClient = 8 * MiB };
        await using var server = new TestServer(options, ("disk", new MemoryExport(64 * MiB)));
        var clients = new List<RawNbdClient>();
        try
        {
            const int requests = 32;
            for (int c = 0; c < 4; c++)
            {
                var client = await server.ConnectRawAsync();
                clients.Add(client);
                await client.AttachAsync("disk");
                await client.SendAsync([.. Enumerable.Range(0, requests).Select(i => Request(0, Read, (ulong)i, (ulong)i * MiB, MiB))]);
            }

            // Each connection alone could take on 4 (its budget) plus what its socket holds: 16
            // or more together. The client's budget (8 MiB) holds them to about half of that.
            long taken = await Waits.SettledAsync(() => server.Counters.RequestsOf(NbdCommand.Read));
            Assert.That(taken, Is.LessThanOrEqualTo(12), "READs the client's four connections took on while no reply was read");

            // Read on all connections at once, as a multi-connection client does: the
            // connections share the client's budget, so one read alone could wait on the others.
            await Task.WhenAll(clients.Select(async client =>
            {
                for (int i = 0; i < requests; i++)
                {
                    Assert.That((await client.ReadSimpleReplyAsync()).Error, Is.Zero);
                    await client.ReadAsync((int)MiB);
                }
            }));

            Assert.That(server.Counters.RequestsOf(NbdCommand.Read), Is.EqualTo(4 * requests), "every request served once replies were read");
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Test]
    public async Task Rejected_requests_are_bounded_too_when_their_replies_are_not_read()
    {
        var options = new NbdServerOptions { MaxInFlightBytes = 64 * 1024, RequestOverheadBytes = 4096 };
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)));
        using var client = await server.ConnectRawAsync();
        await client.AttachAsync("disk");

        // Each is refused (unknown command) with a 16-byte reply; 200,000 of them would be
        // 3.2 MB of replies held if refusals were not counted against the budget.
        const int requests = 200_000;
        var sending = client.SendAsync([.. Enumerable.Range(0, requests).Select(i => Request(0, Unknown, (ulong)i, 0, 0))]);

        // Bounded by the budget plus the socket buffers' worth of 16-byte replies (~30,000).
        long refused = await Waits.SettledAsync(() => server.Counters.RejectedRequests);
        Assert.That(refused, Is.LessThan(requests / 4), "refusals the server took on while none of their replies was read");
        client.Dispose();
        await ObserveEndAsync(sending); // blocked while the server stopped reading; fails now the socket is closed
    }

    private static async Task ObserveEndAsync(Task sending)
    {
        try
        {
            await sending;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The test closed the socket under it.
        }
    }

    [Test]
    public async Task A_client_that_does_not_finish_the_handshake_in_time_is_closed()
    {
        var options = new NbdServerOptions { HandshakeTimeout = TimeSpan.FromMilliseconds(300) };
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)));
        using var silent = await server.ConnectRawAsync();
        using var slow = await server.ConnectRawAsync();
        await silent.ReadAsync(18); // the greeting, never answered
        await slow.StartAsync();    // the greeting answered, then no option

        Assert.That(await silent.IsClosedByServerAsync(), Is.True, "a client that sent nothing");
        Assert.That(await slow.IsClosedByServerAsync(), Is.True, "a client that sent no option");
        Assert.That(server.Counters.HandshakeTimeouts, Is.EqualTo(2));
        Assert.That(await Waits.EventuallyAsync(() => server.Log.Any(l => l.Contains("handshake limit"))), Is.True, "the closes are logged");

        // A client that does finish in time is not affected.
        using var prompt = await server.ConnectRawAsync();
        await prompt.AttachAsync("disk");
        await Task.Delay(600);
        await prompt.SendAsync(Request(0, Read, 1, 0, 1));
        Assert.That(await prompt.ReadSimpleReplyAsync(), Is.EqualTo((0u, 1UL)), "attached clients have no handshake limit");
    }

    [Test]
    public async Task A_stream_of_bad_requests_is_logged_at_a_bounded_rate_with_a_count_of_the_rest()
    {
        await using var server = new TestServer(("disk", new MemoryExport(MiB)));
        using (var client = await server.ConnectRawAsync())
        {
            await client.AttachAsync("disk");
            const int requests = 10_000;
            var sending = client.SendAsync([.. Enumerable.Range(0, requests).Select(i => Request(0, Unknown, (ulong)i, 0, 0))]);
            for (int i = 0; i < requests; i++)
            {
                Assert.That((await client.ReadSimpleReplyAsync()).Error, Is.EqualTo(22u), "every bad request is still answered");
            }

            await sending;
        }

        // The connection ends and says what it left out.
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.ConnectionsOpen == 0), Is.True, "the connection ended");
        var rejections = server.Log.Where(l => l.Contains("rejected") && l.Contains("unknown command")).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(server.Counters.RejectedRequests, Is.EqualTo(10_000), "every one is counted");
            Assert.That(rejections, Has.Count.InRange(1, 50), "log lines for 10,000 bad requests");
            Assert.That(server.Log, Has.Some.Match(@"\d+ more rejected or failed requests or options not logged"));
        });
    }

    [Test]
    public async Task Past_the_connection_limit_a_new_client_is_closed_at_once_and_counted()
    {
        var options = new NbdServerOptions { MaxConnections = 2 };
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)));
        using var first = await server.ConnectRawAsync();
        using var second = await server.ConnectRawAsync();
        await first.ReadAsync(18);
        await second.ReadAsync(18);

        using (var third = await server.ConnectRawAsync())
        {
            Assert.That(await third.IsClosedByServerAsync(), Is.True, "closed without a greeting");
        }

        Assert.That(server.Counters.ConnectionsRefused, Is.EqualTo(1));
        first.Dispose();
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.ConnectionsOpen == 1), Is.True);
        using var fourth = await server.ConnectRawAsync();
        Assert.That(await fourth.AttachAsync("disk"), Is.Not.Zero, "room again once a connection closed");
    }

    [Test]
    public async Task Past_the_limit_per_client_that_client_is_refused_while_the_total_has_room()
    {
        // On a unix socket the client is the peer's uid: every connection of this test is one client.
        var options = new NbdServerOptions { MaxConnections = 10, MaxConnectionsPerClient = 2 };
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)));
        using var first = await server.ConnectRawAsync();
        using var second = await server.ConnectRawAsync();
        await first.ReadAsync(18);
        await second.ReadAsync(18);
        using var third = await server.ConnectRawAsync();

        Assert.That(await third.IsClosedByServerAsync(), Is.True, "the client's third connection");
        Assert.That(server.Counters.ConnectionsRefused, Is.EqualTo(1));
        Assert.That(await Waits.EventuallyAsync(() => server.Log.Any(l => l.Contains("refused") && l.Contains("uid"))), Is.True,
            "the refusal names the client");
    }

    [Test]
    public async Task Hundreds_of_clients_connecting_at_once_are_all_accepted()
    {
        await using var server = new TestServer(("disk", new MemoryExport(MiB)));
        var clients = await Task.WhenAll(Enumerable.Range(0, 500).Select(_ => server.ConnectRawAsync()));
        try
        {
            foreach (var client in clients)
            {
                Assert.That((await client.ReadAsync(18)).Length, Is.EqualTo(18), "every one greeted");
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    [Test]
    public async Task A_write_whose_payload_stops_coming_holds_what_arrived_and_is_dropped_after_the_stall_limit()
    {
        // The floor is low enough for the steady payload below (8 bytes within 0.5 s + 8 / 4 s).
        var options = new NbdServerOptions { PayloadStallTimeout = TimeSpan.FromMilliseconds(500), MinTransferRate = 4 };
        await using var server = new TestServer(options, ("disk", new MemoryExport(64 * MiB)));
        using var stalled = await server.ConnectRawAsync();
        using var steady = await server.ConnectRawAsync();
        await stalled.AttachAsync("disk");
        await steady.AttachAsync("disk");

        // A 32 MiB WRITE with only 100 KB of its payload, then silence.
        await stalled.SendAsync(Request(0, Write, 1, 0, 32 * MiB), new byte[100_000]);
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.RequestBufferBytes > 0), Is.True, "the payload is being received");
        Assert.That(server.Counters.RequestBufferBytes, Is.LessThan(2 * MiB), "memory held for a payload follows what arrived, not what was claimed");

        Assert.That(await stalled.IsClosedByServerAsync(), Is.True, "dropped once no byte came for the stall limit");
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.RequestBufferBytes == 0), Is.True, "and its memory given back");
        Assert.That(server.Log, Has.Some.Contains("stalled"));
        Assert.That(server.Counters.Stalls, Is.EqualTo(1), "counted");

        // A slow but steady payload (a byte more every 100 ms) is not a stalled one.
        var sending = SendSlowlyAsync(steady, Request(0, Write, 2, 0, 8), [1, 2, 3, 4, 5, 6, 7, 8], TimeSpan.FromMilliseconds(100));
        Assert.That(await steady.ReadSimpleReplyAsync(), Is.EqualTo((0u, 2UL)));
        await sending;
    }

    private static async Task SendSlowlyAsync(RawNbdClient client, byte[] header, byte[] payload, TimeSpan pause)
    {
        await client.SendAsync(header);
        foreach (byte b in payload)
        {
            await Task.Delay(pause);
            await client.SendAsync([b]);
        }
    }
}
