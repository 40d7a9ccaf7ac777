using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Who is at the other end of one connection, as far as the server has verified it: what
/// option negotiation decides access by. The socket's identity is known from the start
/// (<see cref="PeerCredentials"/>); the certificate subject is filled in by STARTTLS.
/// </summary>
internal sealed class ConnectionPeer(PeerIdentity socket)
{
    /// <summary>
    /// The subject of the client's certificate, as .NET writes a distinguished name
    /// ("CN=tenant-a, O=Example"), once STARTTLS succeeded with a certificate verified
    /// against the configured authorities (<see cref="NbdTls.VerifiesClients"/>); null
    /// before TLS and when client certificates are not verified.
    /// </summary>
    public string? CertificateSubject { get; set; }

    /// <summary>The identity access rules are judged against: the socket's, with the verified certificate subject.</summary>
    public PeerIdentity Identity => CertificateSubject is null ? socket : socket with { CertificateSubject = CertificateSubject };
}
