namespace BlockOverlay.LibNbd.Tests;

[TestFixture]
public sealed class ConnectTests
{
    private const long DiskSize = 64L << 20;
    private NbdkitServer server = null!;

    [OneTimeSetUp]
    public void StartServer() => server = NbdkitServer.StartUnix("memory", "64M");

    [OneTimeTearDown]
    public void StopServer() => server?.Dispose();

    [Test]
    public void ConnectUnix_reaches_the_export_and_reports_its_size()
    {
        using var client = new NbdClient();
        client.ConnectUnix(server.SocketPath);

        Assert.Multiple(() =>
        {
            Assert.That(client.IsReady, Is.True);
            Assert.That(client.GetSize(), Is.EqualTo(DiskSize));
        });
    }

    [Test]
    public void ConnectUri_reaches_the_export_named_in_the_uri()
    {
        using var client = new NbdClient();
        client.ConnectUri(server.UnixUri);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetSize(), Is.EqualTo(DiskSize));
            Assert.That(client.GetExportName(), Is.Empty);
        });
    }

    [Test]
    public void ConnectTcp_reaches_a_server_on_a_tcp_port()
    {
        using var tcpServer = NbdkitServer.StartTcp("memory", "2M");
        using var client = new NbdClient();
        client.ConnectTcp("127.0.0.1", tcpServer.Port);

        Assert.That(client.GetSize(), Is.EqualTo(2L << 20));
    }

    [Test]
    public void ConnectCommand_drives_a_server_over_its_stdin_and_stdout()
    {
        using var client = new NbdClient();
        client.ConnectCommand(NbdkitServer.NbdkitPath(), "-s", "--exit-with-parent", "memory", "1M");
        byte[] written = [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7))];
        var read = new byte[4096];

        client.Pwrite(written, 8192);
        client.Pread(read, 8192);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetSize(), Is.EqualTo(1L << 20));
            Assert.That(read, Is.EqualTo(written));
        });
    }

    [Test]
    public void Connected_handle_reports_the_protocol_and_what_nbdkit_memory_offers()
    {
        using var client = new NbdClient();
        client.ConnectUnix(server.SocketPath);

        Assert.Multiple(() =>
        {
            Assert.That(client.GetProtocol(), Is.EqualTo("newstyle-fixed"));
            Assert.That(client.GetStructuredRepliesNegotiated(), Is.True);
            Assert.That(client.GetHandshakeFlags(), Is.EqualTo(HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes));
            Assert.That(client.IsReadOnly(), Is.False);
            Assert.That(client.CanFlush(), Is.True);
            Assert.That(client.CanFua(), Is.True);
            Assert.That(client.CanTrim(), Is.True);
            Assert.That(client.CanZero(), Is.True);
            Assert.That(client.CanFastZero(), Is.True);
            Assert.That(client.CanCache(), Is.True);
            Assert.That(client.CanDf(), Is.True);
            Assert.That(client.CanMultiConn(), Is.True);
            Assert.That(client.GetBlockSize(BlockSizeConstraint.Minimum), Is.GreaterThanOrEqualTo(0));
            Assert.That(client.GetVersion(), Does.StartWith("1."));
        });
    }

    [Test]
    public void Read_only_export_is_reported_and_refuses_writes()
    {
        using var readOnlyServer = NbdkitServer.StartUnix("-r", "memory", "1M");
        using var client = new NbdClient();
        client.ConnectUnix(readOnlyServer.SocketPath);

        Assert.Multiple(() =>
        {
            Assert.That(client.IsReadOnly(), Is.True);
            Assert.That(() => client.Pwrite(new byte[512], 0), Throws.TypeOf<NbdException>());
        });
    }

    [Test]
    public void ConnectUnix_to_a_missing_socket_throws_with_ENOENT()
    {
        using var client = new NbdClient();

        var error = Assert.Throws<NbdException>(() => client.ConnectUnix(Path.Combine(server.Directory, "absent.sock")));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.ENOENT));
            Assert.That(error.Message, Does.Contain("connect"));
        });
    }

    [Test]
    public void Shutdown_disconnects_and_later_commands_fail()
    {
        using var client = new NbdClient();
        client.ConnectUnix(server.SocketPath);

        client.Shutdown();

        Assert.Multiple(() =>
        {
            Assert.That(client.IsReady, Is.False);
            Assert.That(() => client.Pread(new byte[512], 0), Throws.TypeOf<NbdException>());
        });
    }

    [Test]
    public void Disposed_client_refuses_further_calls()
    {
        var client = new NbdClient();
        client.Dispose();

        Assert.That(() => client.GetSize(), Throws.TypeOf<ObjectDisposedException>());
    }
}
