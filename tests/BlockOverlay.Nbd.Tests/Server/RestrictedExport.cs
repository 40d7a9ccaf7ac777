using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>A 4 KiB memory export with access rules the test sets, as an instance with stored rules is.</summary>
internal sealed class RestrictedExport(ExportAccess access) : MemoryExportDouble(4096, "restricted"), IRestrictedExport
{
    public ExportAccess Access { get; set; } = access;
}
