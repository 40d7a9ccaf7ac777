using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// <c>serve --tls</c> with the TLS clients of libnbd (nbdinfo, nbdsh) and qemu (qemu-img,
/// qemu-io with <c>tls-creds-x509</c>), certificates made by openssl: data over TLS both ways,
/// <c>require</c> refusing plain clients with NBD_REP_ERR_TLS_REQD, <c>on</c> serving both,
/// client certificates checked against <c>--tls-ca</c>, and a server certificate checked by
/// the client. Two servers for the whole fixture: starting one costs most of a test's time.
/// </summary>
public class TlsClientTests
{
    private const string Export = "disk";

    private TestPki _pki = null!;
    private ServerProcess _required = null!;
    private ServerProcess _optional = null!;

    [OneTimeSetUp]
    public void Start()
    {
        _pki = new TestPki();
        _required = ServerProcess.StartWithOptions(_pki.ServeOptions("require", verifyClients: true), tcp: true, $"{Export}=memory:4M");
        _optional = ServerProcess.StartWithOptions(_pki.ServeOptions("on", verifyClients: false), tcp: false, $"{Export}=memory:4M");
    }

    [OneTimeTearDown]
    public void Stop()
    {
        _optional?.Dispose();
        _required?.Dispose();
        _pki?.Dispose();
    }

    private static string TlsUri(ServerProcess server, string certificates) =>
        $"nbds+unix:///{Export}?socket={server.SocketPath}&tls-certificates={certificates}";

    [Test]
    public void Nbdsh_writes_and_reads_back_over_tls_and_the_server_knows_the_clients_subject()
    {
        string output = NbdshScript.Run(_required, $$"""
            h = nbd.NBD()
            h.set_uri_allow_local_file(True)   # tls-certificates names a local directory
            h.connect_uri("{{TlsUri(_required, _pki.Trusted)}}")
            data = bytes(range(256)) * 4096
            h.pwrite(data, 65536)
            h.flush()
            assert h.pread(len(data), 65536) == data
            print(h.get_tls_negotiated())
            h.shutdown()
            """);

        Assert.That(output.Trim(), Is.EqualTo("True"));
        Assert.That(() => _required.Log, Does.Contain($"TLS started (client certificate: {TestPki.ClientSubject})").After(5000, 20),
            _required.ToString);
    }

    [Test]
    public void Nbdinfo_and_qemu_img_see_the_export_over_tls()
    {
        var nbdinfo = ClientTool.Nbdinfo.Run(TlsUri(_required, _pki.Trusted));
        var qemuImg = ClientTool.QemuImg.Run(["info", .. QemuTls(_pki.Trusted), "--image-opts", QemuImage(_required, tls: true)], TimeSpan.FromSeconds(30));

        Assert.Multiple(() =>
        {
            Assert.That(nbdinfo.ExitCode, Is.Zero, () => $"{nbdinfo}\n{_required}");
            Assert.That(nbdinfo.Stdout, Does.Contain("protocol: newstyle-fixed with TLS"));
            Assert.That(qemuImg.ExitCode, Is.Zero, () => $"{qemuImg}\n{_required}");
            Assert.That(qemuImg.Stdout, Does.Contain("virtual size: 4 MiB (4194304 bytes)"));
        });
    }

    [Test]
    public void Qemu_io_writes_and_reads_back_over_tls()
    {
        var result = ClientTool.QemuIo.Run(
            [.. QemuTls(_pki.Trusted), "--image-opts", QemuImage(_required, tls: true), "-c", "write -P 0x5a 1M 128k", "-c", "read -P 0x5a 1M 128k"],
            TimeSpan.FromSeconds(30));

        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{_required}");
        Assert.That(result.Stdout, Does.Contain("wrote 131072/131072 bytes at offset 1048576")
            .And.Contain("read 131072/131072 bytes at offset 1048576"), () => $"{result}\n{_required}");
        Assert.That(result.Output, Does.Not.Contain("failed").IgnoreCase);
    }

    [Test]
    public void Require_refuses_plain_clients_with_tls_reqd()
    {
        var nbdinfo = ClientTool.Nbdinfo.Run(_required.UnixUri(Export));
        var qemuImg = ClientTool.QemuImg.Run(["info", "--image-opts", QemuImage(_required, tls: false)], TimeSpan.FromSeconds(30));

        Assert.Multiple(() =>
        {
            Assert.That(nbdinfo.ExitCode, Is.Not.Zero, nbdinfo.ToString);
            Assert.That(nbdinfo.Stderr, Does.Contain("server replied with error to opt_go request"), nbdinfo.ToString);
            // qemu names the reply: it says this only for NBD_REP_ERR_TLS_REQD, and shows our message.
            Assert.That(qemuImg.ExitCode, Is.Not.Zero, qemuImg.ToString);
            Assert.That(qemuImg.Stderr, Does.Contain("TLS negotiation required before option 7 (go)")
                .And.Contain("this server requires TLS"), qemuImg.ToString);
        });
    }

    [Test]
    public void On_serves_plain_and_tls_clients_alike()
    {
        var plain = ClientTool.Nbdinfo.Run(_optional.UnixUri(Export));
        // This server asks for no client certificate: one without any gets in.
        var tls = ClientTool.Nbdinfo.Run(TlsUri(_optional, _pki.NoCertificate));

        Assert.Multiple(() =>
        {
            Assert.That(plain.ExitCode, Is.Zero, () => $"{plain}\n{_optional}");
            Assert.That(plain.Stdout, Does.Contain("protocol: newstyle-fixed without TLS"));
            Assert.That(tls.ExitCode, Is.Zero, () => $"{tls}\n{_optional}");
            Assert.That(tls.Stdout, Does.Contain("protocol: newstyle-fixed with TLS"));
        });
    }

    [Test]
    public void With_a_ca_a_client_without_a_certificate_or_with_another_authoritys_is_refused()
    {
        int before = HandshakeFailures(_required);
        var withoutCertificate = ClientTool.Nbdinfo.Run(TlsUri(_required, _pki.NoCertificate));
        var strangersCertificate = ClientTool.Nbdinfo.Run(TlsUri(_required, _pki.StrangersCertificate));

        Assert.Multiple(() =>
        {
            Assert.That(withoutCertificate.ExitCode, Is.Not.Zero, withoutCertificate.ToString);
            Assert.That(strangersCertificate.ExitCode, Is.Not.Zero, strangersCertificate.ToString);
            Assert.That(() => HandshakeFailures(_required) - before, Is.EqualTo(2).After(5000, 20), _required.ToString);
        });
    }

    [Test]
    public void A_client_refuses_the_server_when_its_ca_did_not_sign_the_servers_certificate()
    {
        // Over TCP libnbd checks the server's certificate against the host name (over a unix
        // socket it has no name to check it against).
        string uri = string.Create(CultureInfo.InvariantCulture, $"nbds://localhost:{_required.Port}/{Export}");
        var result = ClientTool.Nbdinfo.Run($"{uri}?tls-certificates={_pki.DistrustsServer}");
        var trusted = ClientTool.Nbdinfo.Run("--size", $"{uri}?tls-certificates={_pki.Trusted}");

        Assert.That(result.ExitCode, Is.Not.Zero, result.ToString);
        Assert.That(result.Stderr, Does.Contain("certificate verification"), result.ToString);
        Assert.That(trusted.Stdout.Trim(), Is.EqualTo("4194304"), trusted.ToString);
    }

    [Test]
    public void Serve_stdio_does_tls_for_nbd_connect_command()
    {
        string[] command = [ServerProcess.BinaryPath, "serve", "--stdio", .. _pki.ServeOptions("require", verifyClients: true)];
        string output = NbdshScript.RunStandalone($$"""
            h = nbd.NBD()
            h.set_tls(nbd.TLS_REQUIRE)
            h.set_tls_certificates({{System.Text.Json.JsonSerializer.Serialize(_pki.Trusted)}})
            h.connect_command({{System.Text.Json.JsonSerializer.Serialize(command)}})
            h.pwrite(b"\x77" * 4096, 0)
            assert h.pread(4096, 0) == b"\x77" * 4096
            print(h.get_tls_negotiated())
            h.shutdown()
            """);

        Assert.That(output.Trim(), Is.EqualTo("True"));
    }

    [Test]
    public void With_tls_required_the_printed_uris_are_the_tls_ones_and_work_once_dir_is_filled_in()
    {
        // The hints are printed once the listeners are bound, which may be just after the fixture saw them accept.
        List<string> PrintedUris() => [.. _required.Log.Split('\n').Select(line => line.Trim()).Where(line => line.StartsWith("nbds", StringComparison.Ordinal))];
        Assert.That(PrintedUris, Has.Count.EqualTo(2).After(5000, 20), _required.ToString);
        var uris = PrintedUris();
        Assert.That(_required.Log, Does.Not.Contain("  nbd+unix:"), "no plain URI that would only be refused");
        foreach (string uri in uris)
        {
            var result = ClientTool.Nbdinfo.Run("--size", uri.Replace("=DIR", "=" + _pki.Trusted, StringComparison.Ordinal));
            Assert.That(result.Stdout.Trim(), Is.EqualTo("4194304"), () => $"{result}\n{_required}");
        }
    }

    /// <summary>Refused handshakes the server has logged so far (its log arrives a little after a client exits).</summary>
    private static int HandshakeFailures(ServerProcess server) =>
        server.Log.Split('\n').Count(line => line.Contains("the TLS handshake failed", StringComparison.Ordinal));

    private static string[] QemuTls(string certificates) => ["--object", $"tls-creds-x509,id=tls0,dir={certificates},endpoint=client"];

    /// <summary>qemu's NBD block driver options; over a unix socket qemu needs the name to check the server's certificate against.</summary>
    private static string QemuImage(ServerProcess server, bool tls) =>
        $"driver=nbd,server.type=unix,server.path={server.SocketPath},export={Export}" + (tls ? ",tls-creds=tls0,tls-hostname=localhost" : "");
}
