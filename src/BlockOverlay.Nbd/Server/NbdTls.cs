using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace BlockOverlay.Nbd.Server;

/// <summary>How a server with TLS treats a client that has not sent NBD_OPT_STARTTLS.</summary>
public enum TlsMode
{
    /// <summary>Plain and TLS clients are both served (the spec's SELECTIVETLS with no TLS-only export).</summary>
    On,

    /// <summary>Every option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD until TLS is up (FORCEDTLS).</summary>
    Require,
}

/// <summary>
/// TLS for NBD_OPT_STARTTLS, as data: the server's X.509 certificate with its private key and
/// the intermediates sent with it, and, when client certificates are verified, the
/// certificate authorities they must chain to. The host reads the files; the NBD layer only
/// uses what it is given.
/// </summary>
/// <remarks>
/// TLS versions are the system's defaults (1.2 and 1.3 on Debian 12), as the spec asks:
/// "MUST support TLS version 1.2". Revocation is not checked and nothing is downloaded
/// while a chain is built: a server must not stall a handshake on the network, and the
/// authority given here is the whole of what a client certificate is trusted for.
/// </remarks>
public sealed class NbdTls
{
    /// <summary>The extended key usage "TLS client authentication" (RFC 5280, id-kp-clientAuth).</summary>
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    private readonly SslStreamCertificateContext _certificate;
    private readonly X509Certificate2Collection? _clientAuthorities;

    /// <param name="mode">Whether plain clients are served too.</param>
    /// <param name="certificate">The server's certificate, with its private key.</param>
    /// <param name="intermediates">Certificates sent with it so that clients can build the chain; may be empty.</param>
    /// <param name="clientAuthorities">
    /// When given, every client must present a certificate that chains to one of these
    /// (self-signed ones are the trust anchors, the others intermediates); when null, clients
    /// are not asked for one.
    /// </param>
    public NbdTls(TlsMode mode, X509Certificate2 certificate, X509Certificate2Collection intermediates, X509Certificate2Collection? clientAuthorities)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        Mode = mode;
        _certificate = SslStreamCertificateContext.Create(certificate, intermediates, offline: true);
        _clientAuthorities = clientAuthorities;
    }

    public TlsMode Mode { get; }

    /// <summary>Client certificates are required and verified; only then is a client's subject known.</summary>
    public bool VerifiesClients => _clientAuthorities is not null;

    /// <summary>
    /// The options of one handshake. Made anew each time: a chain policy is filled in while a
    /// chain is built, so it is not shared between connections.
    /// </summary>
    internal SslServerAuthenticationOptions AuthenticationOptions() => new()
    {
        ServerCertificateContext = _certificate,
        ClientCertificateRequired = VerifiesClients,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        CertificateChainPolicy = _clientAuthorities is null ? null : ClientChainPolicy(_clientAuthorities),
        // Without authorities no certificate is asked for, and no subject is reported (ConnectionPeer).
    };

    private static X509ChainPolicy ClientChainPolicy(X509Certificate2Collection authorities)
    {
        var policy = new X509ChainPolicy
        {
            TrustMode = X509ChainTrustMode.CustomRootTrust,
            RevocationMode = X509RevocationMode.NoCheck,
            DisableCertificateDownloads = true,
        };
        policy.ApplicationPolicy.Add(ClientAuthentication);
        foreach (var authority in authorities)
        {
            bool selfSigned = authority.SubjectName.RawData.AsSpan().SequenceEqual(authority.IssuerName.RawData);
            (selfSigned ? policy.CustomTrustStore : policy.ExtraStore).Add(authority);
        }

        return policy;
    }
}
