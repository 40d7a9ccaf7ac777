using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>What the handshake settled: the export and how to talk about it.</summary>
internal sealed record NegotiatedExport(
    string Name,
    IExport Export,
    bool StructuredReplies,
    IReadOnlyList<MetaContext> MetaContexts)
{
    public TransmissionFlags Flags => TransmissionFlagsFor(Export, StructuredReplies);

    /// <summary>
    /// The flags advertised for an export: exactly what it can do. DF only makes sense
    /// (and is only allowed) with structured replies.
    /// </summary>
    public static TransmissionFlags TransmissionFlagsFor(IExport export, bool structuredReplies)
    {
        var caps = export.Capabilities;
        var flags = TransmissionFlags.HasFlags;
        if (caps.HasFlag(ExportCapabilities.Flush))
        {
            flags |= TransmissionFlags.SendFlush;
        }

        // Write-type features are offered only where writing is possible at all.
        if (caps.HasFlag(ExportCapabilities.ReadOnly))
        {
            flags |= TransmissionFlags.ReadOnly;
        }
        else
        {
            flags |= TransmissionFlags.SendWriteZeroes;
            if (caps.HasFlag(ExportCapabilities.Flush))
            {
                flags |= TransmissionFlags.SendFua;
            }

            if (caps.HasFlag(ExportCapabilities.Trim))
            {
                flags |= TransmissionFlags.SendTrim;
            }

            if (caps.HasFlag(ExportCapabilities.FastZero))
            {
                flags |= TransmissionFlags.SendFastZero;
            }
        }

        if (caps.HasFlag(ExportCapabilities.Cache))
        {
            flags |= TransmissionFlags.SendCache;
        }

        if (caps.HasFlag(ExportCapabilities.MultiConn))
        {
            flags |= TransmissionFlags.CanMultiConn;
        }

        if (structuredReplies)
        {
            flags |= TransmissionFlags.SendDf;
        }

        return flags;
    }
}
