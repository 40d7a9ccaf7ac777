using System.Net;
using BlockOverlay.Nbd.Server;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// The server's budget over all clients: many clients, each within its own budgets, together
/// hold no more than the server's; past it they wait in line, and a well-behaved client is
/// served in bounded time whatever hostile ones hold.
/// </summary>
public class ServerBudgetTests
{
    private const ushort Read = 0;
    private const uint MiB = 1 << 20;

    [Test]
    public async Task Clients_within_their_own_budgets_together_hold_no_more_than_the_servers_and_wait_in_line()
    {
        // Each client (its own address) may hold 4 MiB: three 1 MiB READs. Four of them could
        // hold twelve; the server's 8 MiB lets seven run.
        var options = new NbdServerOptions { MaxInFlightBytes = 4 * MiB, MaxInFlightBytesPerClient = 4 * MiB, MaxInFlightBytesInAll = 8 * MiB };
        var gated = new GatedExport(64 * MiB, gatedOffset: 0);
        await using var server = new TestServer(options, ("disk", gated));
        int port = server.ListenTcp();
        var clients = new List<RawNbdClient>();
        try
        {
            for (int c = 1; c <= 4; c++)
            {
                var client = await TestServer.ConnectTcpAsync(port, IPAddress.Parse($"127.0.0.{c}"));
                clients.Add(client);
                await client.AttachAsync("disk");
                await client.SendAsync([.. Enumerable.Range(0, 8).Select(i => Request(0, Read, (ulong)i, 0, MiB))]);
            }

            // Seven get in; then, a second on, still seven (all 32 were sent long before).
            Assert.That(await Waits.EventuallyAsync(() => gated.Held >= 7), Is.True, "READs reach the export");
            await Task.Delay(1000);
            Assert.Multiple(() =>
            {
                Assert.That(gated.Held, Is.EqualTo(7), "READs running at once: the server's budget, not four clients' worth (12)");
                Assert.That(server.Counters.MemoryWaits, Is.GreaterThan(0), "the waits are counted");
            });

            gated.Open();
            await Task.WhenAll(clients.Select(async client =>
            {
                for (int i = 0; i < 8; i++)
                {
                    Assert.That((await client.ReadSimpleReplyAsync()).Error, Is.Zero);
                    await client.ReadAsync((int)MiB);
                }
            }));
            Assert.That(gated.Held, Is.EqualTo(32), "every request served once room came back: they waited, none was refused");
        }
        finally
        {
            clients.ForEach(c => c.Dispose());
        }
    }

    [Test]
    public async Task A_well_behaved_client_is_served_while_hostile_ones_that_read_no_replies_hold_the_servers_budget()
    {
        // Three hostile clients pipeline 1 MiB READs and read nothing: together they can hold the
        // whole server budget for as long as their replies stay untaken. The reply stall limit
        // bounds that; the tenant, first in line for the budget, gets it as they are dropped.
        var options = new NbdServerOptions
        {
            MaxInFlightBytes = 4 * MiB, MaxInFlightBytesPerClient = 4 * MiB, MaxInFlightBytesInAll = 8 * MiB,
            ReplyStallTimeout = TimeSpan.FromSeconds(1), MinTransferRate = 64 * MiB,
        };
        await using var server = new TestServer(options, ("disk", new BlockOverlay.Engine.Exports.MemoryExport(64 * MiB)));
        int port = server.ListenTcp();
        var hostile = new List<RawNbdClient>();
        try
        {
            for (int c = 1; c <= 3; c++)
            {
                var client = await TestServer.ConnectTcpAsync(port, IPAddress.Parse($"127.0.0.{c}"));
                hostile.Add(client);
                await client.AttachAsync("disk");
                // More than the socket buffers of both ends hold, so the server's writes block.
                await client.SendAsync([.. Enumerable.Range(0, 64).Select(i => Request(0, Read, (ulong)i, (ulong)i * MiB, MiB))]);
            }

            Assert.That(await Waits.EventuallyAsync(() => server.Counters.MemoryWaits > 0), Is.True, "the hostile clients fill the server's budget");
            using var tenant = await TestServer.ConnectTcpAsync(port, IPAddress.Parse("127.0.0.9"));
            await tenant.AttachAsync("disk");
            await tenant.SendAsync(Request(0, Read, 42, 0, 4096));
            Assert.That(await tenant.ReadSimpleReplyAsync(), Is.EqualTo((0u, 42UL)), "served within the read timeout (10 s)");
            await tenant.ReadAsync(4096);
            Assert.That(server.Counters.Stalls, Is.GreaterThan(0), "hostile clients were dropped for not taking their replies");
        }
        finally
        {
            hostile.ForEach(c => c.Dispose());
        }
    }
}
