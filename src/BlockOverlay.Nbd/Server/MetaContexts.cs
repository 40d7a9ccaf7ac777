namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The metadata contexts this server offers and how queries select them.
/// Only <c>base:allocation</c> exists for now; its id is fixed and non-zero.
/// </summary>
internal static class MetaContexts
{
    public const string BaseAllocation = "base:allocation";
    public const uint BaseAllocationId = 1;

    private const string BaseNamespace = "base:";

    /// <summary>
    /// Contexts matched by one query. For LIST a bare namespace ("base:") is a wildcard,
    /// as the protocol allows; for SET only exact names select, so a client always knows
    /// what it asked for.
    /// </summary>
    public static IEnumerable<(uint Id, string Name)> Match(string query, bool listing)
    {
        if (query == BaseAllocation || (listing && query == BaseNamespace))
        {
            yield return (BaseAllocationId, BaseAllocation);
        }
    }

    /// <summary>Every context, for a LIST with no queries.</summary>
    public static IEnumerable<(uint Id, string Name)> All()
    {
        yield return (BaseAllocationId, BaseAllocation);
    }
}
