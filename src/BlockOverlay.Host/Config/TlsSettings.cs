using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Host.Config;

/// <summary>Whether <c>serve</c> offers TLS: <c>--tls</c> and the config's <c>tls.mode</c>.</summary>
internal enum TlsChoice
{
    Off,
    On,
    Require,
}

/// <summary>
/// TLS as the flags or the config's <c>tls</c> section give it: the mode and three PEM files
/// (the server's certificate, optionally followed by its intermediates; its private key;
/// and, optionally, the certificate authorities that client certificates must chain to). A
/// null member was not given. The files are read when serving starts (<see cref="Load"/>),
/// not when the settings are parsed.
/// </summary>
internal sealed record TlsSettings(TlsChoice? Mode = null, string? Certificate = null, string? Key = null, string? Authorities = null)
{
    public const string Modes = "off, on or require";

    public static TlsChoice ParseMode(string text) => text.ToLowerInvariant() switch
    {
        "off" => TlsChoice.Off,
        "on" => TlsChoice.On,
        "require" => TlsChoice.Require,
        _ => throw new FormatException($"'{text}' is not a TLS mode: use {Modes}"),
    };

    /// <summary>Each member of this where given, else <paramref name="lower"/>'s: flags over the config, key by key.</summary>
    public TlsSettings Over(TlsSettings lower) =>
        new(Mode ?? lower.Mode, Certificate ?? lower.Certificate, Key ?? lower.Key, Authorities ?? lower.Authorities);

    /// <summary>Refuses TLS on without the files it cannot start without.</summary>
    public TlsSettings Checked() =>
        Mode is TlsChoice.On or TlsChoice.Require && (Certificate is null || Key is null)
            ? throw new FormatException($"TLS {Mode.Value.ToString().ToLowerInvariant()} needs a certificate and its key: --tls-cert PATH --tls-key PATH (or the config's tls.cert and tls.key)")
            : this;

    /// <summary>The NBD server's TLS from the files, or null when TLS is off.</summary>
    /// <exception cref="FormatException">A file holds no certificate or key, or the key is not the certificate's.</exception>
    /// <exception cref="IOException">A file cannot be read.</exception>
    public NbdTls? Load()
    {
        if (Checked() is not { Mode: TlsChoice.On or TlsChoice.Require, Certificate: { } certificate, Key: { } key })
        {
            return null;
        }

        var server = Read($"--tls-cert {certificate} with --tls-key {key}", () => X509Certificate2.CreateFromPemFile(certificate, key));
        var chain = Certificates("--tls-cert", certificate);
        return new NbdTls(Mode == TlsChoice.Require ? TlsMode.Require : TlsMode.On, server, [.. chain.Skip(1)],
            Authorities is { } authorities ? Certificates("--tls-ca", authorities) : null);
    }

    private static X509Certificate2Collection Certificates(string flag, string path)
    {
        var certificates = new X509Certificate2Collection();
        Read($"{flag} {path}", () =>
        {
            certificates.ImportFromPemFile(path);
            return certificates;
        });
        return certificates.Count > 0 ? certificates : throw new FormatException($"{flag} {path}: no PEM certificate in it");
    }

    /// <summary>
    /// Runs <paramref name="read"/>, telling a malformed file as bad input named by
    /// <paramref name="what"/>. .NET says a key of another certificate with an
    /// <see cref="ArgumentException"/>, which here is the operator's mistake, not a bug.
    /// </summary>
    private static T Read<T>(string what, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is CryptographicException or ArgumentException)
        {
            throw new FormatException($"{what}: {e.Message}", e);
        }
    }
}
