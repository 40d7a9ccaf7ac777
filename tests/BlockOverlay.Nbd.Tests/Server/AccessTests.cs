using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging.Abstractions;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// Who sees which export: connections served with fabricated peer identities (a test runs as one
/// user, so other users are made up here), and the identity the kernel gives a real socket.
/// </summary>
public class AccessTests
{
    private const uint Ack = 1, RepServer = 2, RepInfo = 3, ErrUnknown = 0x80000006;
    private const uint OptExportName = 1, OptList = 3, OptInfo = 6, OptGo = 7, OptStructured = 8, OptListMeta = 9;

    private static readonly PeerIdentity Tenant = new() { Uid = 1000, Gids = [1000] };
    private static readonly PeerIdentity Stranger = new() { Uid = 2000, Gids = [2000] };

    private readonly List<IDisposable> _held = [];
    private string _directory = null!;
    private ExportCatalog _catalog = null!;
    private NbdServer _server = null!;

    [SetUp]
    public void Start()
    {
        _directory = Directory.CreateTempSubdirectory("blockoverlay-access-").FullName;
        _catalog = new ExportCatalog();
        _catalog.Add("tenant", new RestrictedExport(new([new PeerRule(PeerRuleKind.Uid, 1000)]))); // first: the default export, for those who may see it
        _catalog.Add("open", new MemoryExport(4096));
        _catalog.Add("group", new RestrictedExport(new([new PeerRule(PeerRuleKind.Gid, 50)])));
        _catalog.Add("signed", new RestrictedExport(new([new PeerRule(PeerRuleKind.CertificateSubject, Subject: "CN=a, O=Example")])));
        _server = new NbdServer(_catalog, new NbdServerOptions(), NullLoggerFactory.Instance);
    }

    [TearDown]
    public async Task Stop()
    {
        _held.ForEach(h => h.Dispose());
        _held.Clear();
        await _server.DisposeAsync();
        foreach (var (_, export) in _catalog.Snapshot)
        {
            await export.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static IEnumerable<TestCaseData> Listings()
    {
        yield return new TestCaseData(new PeerIdentity { Uid = 1000, Gids = [7, 50] }, new[] { "tenant", "open", "group" }).SetName("uid and a supplementary group");
        yield return new TestCaseData(new PeerIdentity { Uid = 2000, Gids = [50] }, new[] { "open", "group" }).SetName("the group only");
        yield return new TestCaseData(new PeerIdentity { CertificateSubject = "CN=a, O=Example" }, new[] { "open", "signed" }).SetName("a certificate");
        yield return new TestCaseData(new PeerIdentity { CertificateSubject = "CN=a,O=Example" }, new[] { "open" }).SetName("another subject");
        yield return new TestCaseData(PeerIdentity.Anonymous, new[] { "open" }).SetName("anonymous (TCP)");
    }

    [TestCaseSource(nameof(Listings))]
    public async Task List_shows_a_restricted_export_only_to_the_peers_its_rules_name(PeerIdentity peer, string[] listed)
    {
        var client = await ConnectAsAsync(peer);
        await client.StartAsync();
        await client.SendAsync(Option(OptList, []));
        var replies = await client.ReadOptionRepliesAsync();
        Assert.That(replies[^1].Type, Is.EqualTo(Ack));
        Assert.That(replies.Where(r => r.Type == RepServer).Select(r => Encoding.UTF8.GetString(r.Data, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data))),
            Is.EqualTo(listed));
    }

    [TestCase(OptGo)]
    [TestCase(OptInfo)]
    [TestCase(OptListMeta)]
    public async Task An_export_the_peer_may_not_see_is_answered_as_a_missing_one(uint option)
    {
        var client = await ConnectAsAsync(Stranger);
        await client.StartAsync();
        await client.SendAsync(Option(OptStructured, []));
        await client.ReadOptionRepliesAsync();

        var hidden = await AskAsync(client, option, "tenant");
        var missing = await AskAsync(client, option, "nosuch");
        Assert.That(hidden.Type, Is.EqualTo(ErrUnknown));
        Assert.That(Encoding.UTF8.GetString(hidden.Data).Replace("tenant", "nosuch", StringComparison.Ordinal),
            Is.EqualTo(Encoding.UTF8.GetString(missing.Data)), "the same words as for a name that does not exist");
        Assert.That(Encoding.UTF8.GetString(missing.Data), Does.Not.Contain("tenant").And.Not.Contain("group").And.Contain("'open'"));
    }

    [Test]
    public async Task Export_name_of_an_export_the_peer_may_not_see_closes_the_connection()
    {
        var client = await ConnectAsAsync(Stranger);
        await client.StartAsync();
        await client.SendAsync(Option(OptExportName, Encoding.UTF8.GetBytes("tenant")));
        Assert.That(await client.IsClosedByServerAsync(), Is.True);
    }

    [Test]
    public async Task The_default_export_is_the_first_one_the_peer_may_see()
    {
        Assert.That(await DefaultExportAsync(Tenant), Is.EqualTo("tenant"));
        Assert.That(await DefaultExportAsync(Stranger), Is.EqualTo("open"));
    }

    [Test]
    public async Task A_peer_a_rule_names_attaches_and_a_changed_rule_applies_to_the_next_connection()
    {
        var allowed = await ConnectAsAsync(Tenant);
        await allowed.AttachAsync("tenant");
        await allowed.SendAsync(Request(0, 0, 5, 0, 1));
        Assert.That(await allowed.ReadSimpleReplyAsync(), Is.EqualTo((0u, 5UL)));

        ((RestrictedExport)_catalog.Snapshot.First().Value).Access = new ExportAccess([new PeerRule(PeerRuleKind.Uid, 3000)]);
        var next = await ConnectAsAsync(Tenant);
        await next.StartAsync();
        Assert.That((await AskAsync(next, OptGo, "tenant")).Type, Is.EqualTo(ErrUnknown));
    }

    [Test]
    public async Task Connections_a_changed_rule_no_longer_allows_are_ended_and_the_others_keep_serving()
    {
        var tenant = (RestrictedExport)_catalog.Snapshot.First().Value;
        tenant.Access = new ExportAccess([new PeerRule(PeerRuleKind.Uid, 1000), new PeerRule(PeerRuleKind.Uid, 2000)]);
        var revoked = await ConnectAsAsync(Tenant);
        var kept = await ConnectAsAsync(Stranger);
        var elsewhere = await ConnectAsAsync(Tenant);
        await revoked.AttachAsync("tenant");
        await kept.AttachAsync("tenant");
        await elsewhere.AttachAsync("open");

        tenant.Access = new ExportAccess([new PeerRule(PeerRuleKind.Uid, 2000)]);
        Assert.That(_catalog.Rejudge("tenant"), Is.EqualTo(1), "one connection no longer allowed");
        Assert.That(await revoked.IsClosedByServerAsync(), Is.True);
        foreach (var (client, cookie) in new[] { (kept, 1UL), (elsewhere, 2UL) })
        {
            await client.SendAsync(Request(0, 0, cookie, 0, 1));
            Assert.That(await client.ReadSimpleReplyAsync(), Is.EqualTo((0u, cookie)), "still allowed, or on another export: served");
        }

        Assert.That(_catalog.Rejudge("tenant"), Is.Zero, "judged again: nothing more to end");
        Assert.That(_catalog.ConnectionsTo("tenant"), Is.EqualTo(1));
    }

    [Test]
    public async Task The_kernel_names_a_unix_socket_peer_by_its_uid_and_groups_and_a_tcp_peer_not_at_all()
    {
        var (uid, gids) = OwnCredentials();
        using (var pair = await SocketPairAsync(new UnixDomainSocketEndPoint(Path.Combine(_directory, "peer.sock"))))
        {
            var peer = PeerCredentials.Of(pair.Accepted);
            Assert.That(peer.Uid, Is.EqualTo(uid));
            Assert.That(peer.Gids, Is.EquivalentTo(gids));
        }

        using var tcp = await SocketPairAsync(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.That(PeerCredentials.Of(tcp.Accepted), Is.SameAs(PeerIdentity.Anonymous));
    }

    private static async Task<(uint Type, byte[] Data)> AskAsync(RawNbdClient client, uint option, string export)
    {
        await client.SendAsync(Option(option, option == OptListMeta ? MetaData(export) : GoData(export)));
        var reply = (await client.ReadOptionRepliesAsync())[^1];
        return (reply.Type, reply.Data);
    }

    private async Task<string> DefaultExportAsync(PeerIdentity peer)
    {
        var client = await ConnectAsAsync(peer);
        await client.StartAsync();
        await client.SendAsync(Option(OptInfo, GoData("", 1)));
        var name = (await client.ReadOptionRepliesAsync()).First(r => r.Type == RepInfo && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == 1);
        return Encoding.UTF8.GetString(name.Data.AsSpan(2));
    }

    /// <summary>A connection the server serves as <paramref name="peer"/>, whoever the socket's peer really is.</summary>
    private async Task<RawNbdClient> ConnectAsAsync(PeerIdentity peer)
    {
        var pair = await SocketPairAsync(new UnixDomainSocketEndPoint(Path.Combine(_directory, $"c{_held.Count}.sock")));
        var stream = new NetworkStream(pair.Accepted, ownsSocket: true);
        _ = _server.ServeStreamAsync(stream, stream, "test", peer);
        var client = new RawNbdClient(pair.Connected);
        _held.Add(client);
        _held.Add(stream);
        return client;
    }

    private static async Task<SocketPair> SocketPairAsync(EndPoint endPoint)
    {
        var protocol = endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp;
        using var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, protocol);
        listener.Bind(endPoint);
        listener.Listen();
        var connected = new Socket(endPoint.AddressFamily, SocketType.Stream, protocol);
        await connected.ConnectAsync(listener.LocalEndPoint!);
        return new SocketPair(connected, await listener.AcceptAsync());
    }

    /// <summary>This process's effective uid and its groups, from /proc (.NET has no getuid).</summary>
    private static (uint Uid, uint[] Gids) OwnCredentials()
    {
        var status = File.ReadAllLines("/proc/self/status").Select(l => l.Split(':', 2)).ToDictionary(p => p[0], p => p[1].Trim());
        uint Effective(string key) => uint.Parse(status[key].Split('\t')[1], System.Globalization.CultureInfo.InvariantCulture);
        var groups = status["Groups"].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(g => uint.Parse(g, System.Globalization.CultureInfo.InvariantCulture));
        return (Effective("Uid"), [.. groups.Append(Effective("Gid")).Distinct()]);
    }

    private sealed record SocketPair(Socket Connected, Socket Accepted) : IDisposable
    {
        public void Dispose()
        {
            Connected.Dispose();
            Accepted.Dispose();
        }
    }
}
