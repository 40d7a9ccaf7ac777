namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Who is at the other end of one connection, as far as the server has verified it: what
/// option negotiation may decide access by. Filled in as it becomes known.
/// </summary>
internal sealed class ConnectionPeer
{
    /// <summary>
    /// The subject of the client's certificate, as .NET writes a distinguished name
    /// ("CN=tenant-a, O=Example"), once STARTTLS succeeded with a certificate verified
    /// against the configured authorities (<see cref="NbdTls.VerifiesClients"/>); null
    /// before TLS and when client certificates are not verified.
    /// </summary>
    public string? CertificateSubject { get; set; }
}
