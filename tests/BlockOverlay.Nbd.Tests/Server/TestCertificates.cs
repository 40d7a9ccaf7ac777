using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A certificate authority with a server and a client certificate it signed, and a second
/// authority with a client of its own, made in memory (ECDSA P-256: milliseconds).
/// </summary>
internal sealed class TestCertificates
{
    private static readonly Oid ServerAuthentication = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuthentication = new("1.3.6.1.5.5.7.3.2");

    public TestCertificates()
    {
        Authority = NewAuthority("CN=test CA");
        Server = Issue(Authority, "CN=localhost", ServerAuthentication);
        Client = Issue(Authority, "CN=tenant-a, O=Example", ClientAuthentication);
        var stranger = NewAuthority("CN=another CA");
        StrangersClient = Issue(stranger, "CN=tenant-a, O=Example", ClientAuthentication);
    }

    public X509Certificate2 Authority { get; }

    public X509Certificate2 Server { get; }

    public X509Certificate2 Client { get; }

    /// <summary>A client certificate with the same subject, signed by another authority.</summary>
    public X509Certificate2 StrangersClient { get; }

    /// <summary>The server's TLS; client certificates are verified against <see cref="Authority"/> when <paramref name="verifyClients"/>.</summary>
    public NbdTls Tls(TlsMode mode, bool verifyClients = false) =>
        new(mode, Server, [], verifyClients ? [Authority] : null);

    private static X509Certificate2 NewAuthority(string subject)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign, true));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
    }

    private static X509Certificate2 Issue(X509Certificate2 authority, string subject, Oid usage)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        // It ends an hour before its authority: a day from a later "now" could pass the
        // authority's end, stored in whole seconds, when the clock crossed a second between them.
        using var issued = request.Create(authority, DateTimeOffset.UtcNow.AddMinutes(-5), new DateTimeOffset(authority.NotAfter).AddHours(-1),
            RandomNumberGenerator.GetBytes(8));
        return issued.CopyWithPrivateKey(key);
    }
}
