namespace BlockOverlay.Exports;

/// <summary>
/// Who a client is, as far as the server can tell: a unix-socket peer's user and groups (from
/// the kernel, SO_PEERCRED and SO_PEERGROUPS), a TLS client's certificate subject. A TCP client
/// without a certificate is nobody: <see cref="Anonymous"/>.
/// </summary>
public sealed record PeerIdentity
{
    public static PeerIdentity Anonymous { get; } = new();

    /// <summary>The peer's user id; null when it is not known (TCP, a pipe).</summary>
    public uint? Uid { get; init; }

    /// <summary>The peer's groups: primary, then supplementary.</summary>
    public IReadOnlyList<uint> Gids { get; init; } = [];

    /// <summary>The subject of the certificate the client presented over TLS, as .NET writes it (<c>CN=a, O=b</c>); null without one.</summary>
    public string? CertificateSubject { get; init; }

    /// <summary>For logs: uid, groups, subject, whichever are known.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        if (Uid is { } uid)
        {
            parts.Add($"uid {uid}");
        }

        if (Gids.Count > 0)
        {
            parts.Add($"gids {string.Join(",", Gids)}");
        }

        if (CertificateSubject is { } subject)
        {
            parts.Add($"certificate '{subject}'");
        }

        return parts.Count == 0 ? "anonymous" : string.Join(", ", parts);
    }
}

/// <summary>What a rule names.</summary>
public enum PeerRuleKind
{
    Uid,
    /// <summary>Matches the peer's primary or any supplementary group.</summary>
    Gid,
    /// <summary>Matches a certificate subject exactly (ordinal).</summary>
    CertificateSubject,
}

/// <summary>One client an export admits.</summary>
public sealed record PeerRule(PeerRuleKind Kind, uint Id = 0, string Subject = "")
{
    public bool Matches(PeerIdentity peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        return Kind switch
        {
            PeerRuleKind.Uid => peer.Uid == Id,
            PeerRuleKind.Gid => peer.Gids.Contains(Id),
            _ => string.Equals(peer.CertificateSubject, Subject, StringComparison.Ordinal),
        };
    }
}

/// <summary>Who may see and open an export: with no rule everyone, else a client some rule matches.</summary>
public sealed record ExportAccess(IReadOnlyList<PeerRule> Rules)
{
    public static ExportAccess Everyone { get; } = new([]);

    public bool Allows(PeerIdentity peer) => Rules.Count == 0 || Rules.Any(r => r.Matches(peer));
}

/// <summary>
/// An export not every client may see. The server lists it, describes it and opens it only for
/// clients its <see cref="Access"/> allows; to everyone else it answers as for a name that does
/// not exist. Read at each negotiation, so a change applies to the next connection.
/// </summary>
public interface IRestrictedExport
{
    ExportAccess Access { get; }
}

public static class ExportVisibility
{
    /// <summary>Whether <paramref name="peer"/> may see and open <paramref name="export"/> (a plain export: everyone).</summary>
    public static bool IsVisibleTo(this IExport export, PeerIdentity peer) => export is not IRestrictedExport restricted || restricted.Access.Allows(peer);
}
