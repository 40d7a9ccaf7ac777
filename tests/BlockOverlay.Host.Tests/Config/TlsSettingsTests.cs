using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BlockOverlay.Host.Config;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Host.Tests.Config;

/// <summary>
/// The TLS files read when serving starts: PEM certificates and keys become the NBD server's
/// TLS, and a file that is missing, holds nothing, or holds a key of another certificate is
/// refused naming it.
/// </summary>
public class TlsSettingsTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-tls-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void Off_reads_no_file()
    {
        Assert.That(new TlsSettings(TlsChoice.Off, "/no/such.pem", "/no/such.key").Load(), Is.Null);
        Assert.That(new TlsSettings().Load(), Is.Null);
    }

    [Test]
    public void The_files_become_the_servers_tls_and_a_ca_makes_it_verify_clients()
    {
        var (certificate, key) = WriteCertificate("server");

        var on = new TlsSettings(TlsChoice.On, certificate, key).Load()!;
        var require = new TlsSettings(TlsChoice.Require, certificate, key, Authorities: certificate).Load()!;

        Assert.That((on.Mode, on.VerifiesClients), Is.EqualTo((TlsMode.On, false)));
        Assert.That((require.Mode, require.VerifiesClients), Is.EqualTo((TlsMode.Require, true)));
    }

    [Test]
    public void A_key_of_another_certificate_is_refused_naming_both_files()
    {
        var (certificate, _) = WriteCertificate("server");
        var (_, otherKey) = WriteCertificate("other");

        var message = Assert.Throws<FormatException>(() => new TlsSettings(TlsChoice.On, certificate, otherKey).Load())!.Message;
        Assert.That(message, Does.StartWith($"--tls-cert {certificate} with --tls-key {otherKey}: "));
    }

    [Test]
    public void A_ca_file_without_a_certificate_is_refused()
    {
        var (certificate, key) = WriteCertificate("server");
        string empty = Path.Combine(_directory, "empty.pem");
        File.WriteAllText(empty, "not a certificate\n");

        Assert.That(Assert.Throws<FormatException>(() => new TlsSettings(TlsChoice.On, certificate, key, empty).Load())!.Message,
            Is.EqualTo($"--tls-ca {empty}: no PEM certificate in it"));
    }

    [Test]
    public void A_missing_file_is_an_io_error()
    {
        var (certificate, _) = WriteCertificate("server");

        Assert.Throws<FileNotFoundException>(() => new TlsSettings(TlsChoice.On, certificate, Path.Combine(_directory, "missing.key")).Load());
    }

    /// <summary>A self-signed certificate and its key as PEM files NAME-cert.pem and NAME-key.pem.</summary>
    private (string Certificate, string Key) WriteCertificate(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        string certificatePath = Path.Combine(_directory, $"{name}-cert.pem");
        string keyPath = Path.Combine(_directory, $"{name}-key.pem");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }
}
