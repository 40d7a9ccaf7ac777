namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// X.509 files made with openssl (Debian's package of that name) for the TLS tests: an
/// authority, a server certificate it signed for localhost, a client certificate it signed
/// (subject <see cref="ClientSubject"/>), and a second authority with a client of its own.
/// Client directories are laid out as libnbd's <c>tls-certificates=DIR</c> and qemu's
/// <c>tls-creds-x509,dir=DIR</c> both read them: <c>ca-cert.pem</c>, <c>client-cert.pem</c>,
/// <c>client-key.pem</c>. ECDSA P-256 keys: the whole set takes well under a second.
/// </summary>
internal sealed class TestPki : IDisposable
{
    public const string ClientSubject = "CN=tenant-a, O=Example";

    private static readonly ClientTool Openssl = new("openssl", "openssl");

    private readonly ScratchDirectory _files = new();

    public TestPki()
    {
        Authority("ca");
        Issue("server", "ca", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        Issue("client", "ca", "/O=Example/CN=tenant-a", "extendedKeyUsage=clientAuth\n");
        Authority("other-ca");
        Issue("other-client", "other-ca", "/O=Example/CN=tenant-a", "extendedKeyUsage=clientAuth\n");

        Trusted = ClientDirectory("trusted", "ca", "client");
        NoCertificate = ClientDirectory("no-certificate", "ca", client: null);
        StrangersCertificate = ClientDirectory("strangers-certificate", "ca", "other-client");
        DistrustsServer = ClientDirectory("distrusts-server", "other-ca", "client");
    }

    public string ServerCertificate => _files["server-cert.pem"];

    public string ServerKey => _files["server-key.pem"];

    public string AuthorityCertificate => _files["ca-cert.pem"];

    /// <summary>The authority's certificate and a client certificate it signed.</summary>
    public string Trusted { get; }

    /// <summary>The authority's certificate and no client certificate.</summary>
    public string NoCertificate { get; }

    /// <summary>The authority's certificate and a client certificate the other authority signed.</summary>
    public string StrangersCertificate { get; }

    /// <summary>A good client certificate, but only the other authority to check the server with.</summary>
    public string DistrustsServer { get; }

    /// <summary><c>serve</c>'s TLS options: this server certificate and, if <paramref name="verifyClients"/>, the authority for clients.</summary>
    public string[] ServeOptions(string mode, bool verifyClients) =>
        ["--tls", mode, "--tls-cert", ServerCertificate, "--tls-key", ServerKey, .. verifyClients ? new[] { "--tls-ca", AuthorityCertificate } : []];

    public void Dispose() => _files.Dispose();

    private void Authority(string name) => Run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", _files[$"{name}-key.pem"], "-out", _files[$"{name}-cert.pem"], "-days", "2", "-subj", $"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");

    private void Issue(string name, string authority, string subject, string extensions)
    {
        Run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", _files[$"{name}-key.pem"], "-out", _files[$"{name}.csr"], "-subj", subject);
        File.WriteAllText(_files[$"{name}.ext"], extensions + "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n");
        Run("x509", "-req", "-in", _files[$"{name}.csr"], "-CA", _files[$"{authority}-cert.pem"], "-CAkey", _files[$"{authority}-key.pem"],
            "-set_serial", $"{Random.Shared.NextInt64(1, long.MaxValue)}", "-days", "2", "-extfile", _files[$"{name}.ext"], "-out", _files[$"{name}-cert.pem"]);
    }

    private string ClientDirectory(string name, string authority, string? client)
    {
        string directory = Directory.CreateDirectory(_files[name]).FullName;
        File.Copy(_files[$"{authority}-cert.pem"], Path.Combine(directory, "ca-cert.pem"));
        if (client is not null)
        {
            File.Copy(_files[$"{client}-cert.pem"], Path.Combine(directory, "client-cert.pem"));
            File.Copy(_files[$"{client}-key.pem"], Path.Combine(directory, "client-key.pem"));
        }

        return directory;
    }

    private static void Run(params string[] args)
    {
        var result = Openssl.Run(args);
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
    }
}
