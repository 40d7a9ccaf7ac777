namespace BlockOverlay.LibNbd.Tests;

/// <summary>Option haggling in opt mode, against nbdkit with two named exports of different
/// sizes, a description, and "disk1" as the default export.</summary>
[TestFixture]
public sealed class NegotiationTests
{
    private NbdkitServer server = null!;

    [OneTimeSetUp]
    public void StartServer() => server = NbdkitServer.StartUnix(
        "--filter=exportname", "--filter=truncate", "memory", "64M",
        "exportname=disk1", "exportname=disk2", "exportname-list=explicit", "default-export=disk1",
        "exportdesc=fixed:scratch disk", "size=48M");

    [OneTimeTearDown]
    public void StopServer() => server?.Dispose();

    [Test]
    public void OptList_returns_every_export_with_its_description()
    {
        using var client = ConnectInOptMode();

        var exports = client.OptList();

        Assert.That(exports, Is.EqualTo(new[] { new ExportEntry("disk1", "scratch disk"), new ExportEntry("disk2", "scratch disk") }));
    }

    [Test]
    public void OptInfo_reports_the_size_before_the_export_is_opened()
    {
        using var client = ConnectInOptMode();
        client.SetExportName("disk2");

        client.OptInfo();

        Assert.Multiple(() =>
        {
            Assert.That(client.IsNegotiating, Is.True);
            Assert.That(client.GetSize(), Is.EqualTo(48L << 20));
        });
    }

    [Test]
    public void OptGo_after_OptInfo_opens_the_export()
    {
        using var client = ConnectInOptMode();
        client.OptInfo();

        client.OptGo();

        Assert.Multiple(() =>
        {
            Assert.That(client.IsReady, Is.True);
            Assert.That(client.GetSize(), Is.EqualTo(48L << 20));
        });
    }

    [Test]
    public void OptAbort_ends_the_negotiation_without_opening_an_export()
    {
        using var client = ConnectInOptMode();

        client.OptAbort();

        Assert.Multiple(() =>
        {
            Assert.That(client.IsNegotiating, Is.False);
            Assert.That(client.IsClosed, Is.True);
            Assert.That(() => client.Pread(new byte[512], 0), Throws.TypeOf<NbdException>());
        });
    }

    [Test]
    public void OptListMetaContext_offers_base_allocation()
    {
        using var client = ConnectInOptMode();
        client.AddMetaContext(MetaContexts.BaseAllocation);

        var contexts = client.OptListMetaContext();

        Assert.That(contexts, Is.EqualTo(new[] { MetaContexts.BaseAllocation }));
    }

    [Test]
    public void Full_info_reports_the_canonical_name_and_description_of_the_default_export()
    {
        using var client = new NbdClient();
        client.SetFullInfo(true);
        client.ConnectUnix(server.SocketPath);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetExportName(), Is.Empty);
            Assert.That(client.GetCanonicalExportName(), Is.EqualTo("disk1"));
            Assert.That(client.GetExportDescription(), Is.EqualTo("scratch disk"));
        });
    }

    [Test]
    public void Declining_structured_replies_negotiates_simple_replies_only()
    {
        using var client = new NbdClient();
        client.SetRequestStructuredReplies(false);
        client.ConnectUnix(server.SocketPath);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetStructuredRepliesNegotiated(), Is.False);
            Assert.That(client.CanDf(), Is.False);
        });
    }

    [Test]
    public void Handshake_without_fixed_newstyle_falls_back_to_plain_newstyle()
    {
        using var client = new NbdClient();
        client.SetHandshakeFlags(HandshakeFlags.None);
        client.SetExportName("disk1");
        client.ConnectUnix(server.SocketPath);
        var read = new byte[512];

        client.Pread(read, 0);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetProtocol(), Is.EqualTo("newstyle"));
            Assert.That(client.GetHandshakeFlags(), Is.EqualTo(HandshakeFlags.None));
        });
    }

    private NbdClient ConnectInOptMode()
    {
        var client = new NbdClient();
        client.SetOptMode(true);
        client.ConnectUnix(server.SocketPath);
        return client;
    }
}
