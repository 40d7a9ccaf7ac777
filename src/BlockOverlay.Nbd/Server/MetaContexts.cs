using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Server;

/// <summary>A metadata context a client can select: its id on this server and its name.</summary>
internal readonly record struct MetaContext(uint Id, string Name);

/// <summary>
/// The metadata contexts this server offers and how queries select them.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>base:allocation</c> (id 1), on every export: HOLE and ZERO as the protocol defines.</item>
/// <item><c>blockoverlay:layer</c> (id 2), on exports made of layers (instances): each
/// descriptor's flags say where the bytes come from, 0 = neither layer (reads as zeros),
/// 1 = the instance's upper data, 2 = the base image. Like qemu's
/// <c>qemu:allocation-depth</c>, for tools that copy only what an instance changed.</item>
/// </list>
/// For LIST a bare namespace ("base:", "blockoverlay:") is a wildcard, as the protocol
/// allows; for SET only exact names select, so a client always knows what it asked for.
/// </remarks>
internal static class MetaContexts
{
    public static readonly MetaContext BaseAllocation = new(1, "base:allocation");
    public static readonly MetaContext Layer = new(2, "blockoverlay:layer");

    /// <summary>Every context the export offers.</summary>
    public static IEnumerable<MetaContext> All(IExport export)
    {
        yield return BaseAllocation;
        if (export is ILayeredExport)
        {
            yield return Layer;
        }
    }

    /// <summary>The contexts one query selects on an export.</summary>
    public static IEnumerable<MetaContext> Match(string query, bool listing, IExport export) =>
        All(export).Where(c => c.Name == query || (listing && query.EndsWith(':') && c.Name.StartsWith(query, StringComparison.Ordinal)));
}
