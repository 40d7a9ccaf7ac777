using BlockOverlay.Exports;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// An instance's stored access rules as the export contract states them, so the protocol layer
/// decides who sees the instance without knowing the store.
/// </summary>
internal static class InstanceAccessRules
{
    public static ExportAccess ToExportAccess(this InstanceAccess access) => access.IsOpen
        ? ExportAccess.Everyone
        : new ExportAccess([.. access.Rules.Select(ToPeerRule)]);

    private static PeerRule ToPeerRule(AccessRule rule) => rule.Kind switch
    {
        AccessKind.Uid => new PeerRule(PeerRuleKind.Uid, rule.Id),
        AccessKind.Gid => new PeerRule(PeerRuleKind.Gid, rule.Id),
        AccessKind.CertificateSubject => new PeerRule(PeerRuleKind.CertificateSubject, Subject: rule.Subject),
        _ => throw new ArgumentOutOfRangeException(nameof(rule), rule.Kind, "an access rule of a kind the store does not decode"),
    };
}
