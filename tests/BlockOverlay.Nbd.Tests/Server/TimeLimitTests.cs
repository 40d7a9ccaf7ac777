using BlockOverlay.Engine.Exports;
using BlockOverlay.Nbd.Server;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// How long a client may hold what it holds: an idle connection (when the operator sets an idle
/// limit), a payload that trickles in, replies the client does not take.
/// </summary>
public class TimeLimitTests
{
    private const ushort Read = 0, Write = 1;
    private const uint MiB = 1 << 20;

    [Test]
    public async Task With_an_idle_limit_a_client_that_goes_quiet_after_the_handshake_is_closed_and_counted()
    {
        var options = new NbdServerOptions { IdleTimeout = TimeSpan.FromSeconds(1) };
        var gated = new GatedExport(MiB, gatedOffset: 0);
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)), ("gated", gated));
        using var quiet = await server.ConnectRawAsync();
        using var busy = await server.ConnectRawAsync();
        using var steady = await server.ConnectRawAsync();
        await quiet.AttachAsync("disk");
        await busy.AttachAsync("gated");
        await steady.AttachAsync("disk");

        // One request in flight for longer than the limit: waiting on the server is not idleness.
        await busy.SendAsync(Request(0, Read, 7, 0, 512));
        var steadyRequests = Task.Run(async () =>
        {
            for (ulong i = 0; i < 20; i++)
            {
                await steady.SendAsync(Request(0, Read, i, 4096, 512));
                Assert.That((await steady.ReadSimpleReplyAsync()).Cookie, Is.EqualTo(i));
                await steady.ReadAsync(512);
                await Task.Delay(100);
            }
        });

        Assert.That(await quiet.IsClosedByServerAsync(), Is.True, "a client that sent nothing after the handshake");
        await steadyRequests;
        Assert.That(server.Counters.IdleTimeouts, Is.EqualTo(1), "a client asking every 100 ms is not idle, nor one whose request runs");
        steady.Dispose(); // done: it would go idle from here

        gated.Open();
        Assert.That(await busy.ReadSimpleReplyAsync(), Is.EqualTo((0u, 7UL)), "its reply came, then the limit counts from there");
        await busy.ReadAsync(512);
        Assert.That(await busy.IsClosedByServerAsync(), Is.True);
        Assert.That(server.Counters.IdleTimeouts, Is.EqualTo(2));
        Assert.That(await Waits.EventuallyAsync(() => server.Log.Count(l => l.Contains("nothing sent for the idle limit of 1 s")) == 2), Is.True,
            "each close is logged with its reason");
    }

    [Test]
    public async Task Without_an_idle_limit_a_quiet_client_stays_connected()
    {
        await using var server = new TestServer(("disk", new MemoryExport(MiB)));
        using var quiet = await server.ConnectRawAsync();
        await quiet.AttachAsync("disk");
        await Task.Delay(1000);
        await quiet.SendAsync(Request(0, Read, 3, 0, 1));
        Assert.That(await quiet.ReadSimpleReplyAsync(), Is.EqualTo((0u, 3UL)), "the default: no idle limit");
    }

    [Test]
    public async Task A_payload_that_trickles_in_slower_than_the_floor_is_dropped_though_bytes_keep_coming()
    {
        // 2 KiB at the floor of 1 KiB/s: whole within 0.3 s + 2 s. It comes at 160 bytes a second,
        // never 0.3 s without a byte, so only the floor can end it.
        var options = new NbdServerOptions { PayloadStallTimeout = TimeSpan.FromMilliseconds(300), MinTransferRate = 1024 };
        await using var server = new TestServer(options, ("disk", new MemoryExport(MiB)));
        using var trickle = await server.ConnectRawAsync();
        await trickle.AttachAsync("disk");
        await trickle.SendAsync(Request(0, Write, 1, 0, 2048));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var sending = Task.Run(async () =>
        {
            for (int i = 0; i < 128 && !stop.IsCancellationRequested; i++)
            {
                await trickle.SendAsync(new byte[16]);
                await Task.Delay(100);
            }
        });

        var clock = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(await trickle.IsClosedByServerAsync(), Is.True);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(6)), "dropped at its deadline (2.3 s), not when it would have been whole (12.8 s)");
        await stop.CancelAsync();
        await ObserveEndAsync(sending);
        Assert.That(server.Counters.Stalls, Is.EqualTo(1));
        Assert.That(await Waits.EventuallyAsync(() => server.Log.Any(l => l.Contains("slower than 1024 bytes/s"))), Is.True);
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.RequestBufferBytes == 0), Is.True, "what it held is given back");
    }

    [Test]
    public async Task A_client_that_does_not_take_its_replies_is_dropped_after_the_reply_stall_limit_and_its_budget_given_back()
    {
        var options = new NbdServerOptions { MaxInFlightBytes = 4 * MiB, ReplyStallTimeout = TimeSpan.FromMilliseconds(500), MinTransferRate = 64 * MiB };
        await using var server = new TestServer(options, ("disk", new MemoryExport(64 * MiB)));
        using var deaf = await server.ConnectRawAsync();
        await deaf.AttachAsync("disk");
        await deaf.SendAsync([.. Enumerable.Range(0, 64).Select(i => Request(0, Read, (ulong)i, (ulong)i * MiB, MiB))]);

        Assert.That(await Waits.EventuallyAsync(() => server.Counters.Stalls == 1), Is.True, "dropped once a batch of replies went untaken");
        Assert.That(await Waits.EventuallyAsync(() => server.Counters.ConnectionsOpen == 0 && server.Counters.RequestBufferBytes == 0), Is.True,
            "the connection is gone and what it held given back");
        Assert.That(server.Log, Has.Some.Contains("its replies were not taken within the reply stall limit of 0.5 s"));
    }

    private static async Task ObserveEndAsync(Task sending)
    {
        try
        {
            await sending;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The server closed the socket under it.
        }
    }
}
