using System.Collections.Immutable;
using BlockOverlay.Engine.Exports;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The exports a server offers, by name. Readers see an immutable snapshot, so a
/// connection negotiating never races with an export being added or removed.
/// </summary>
public sealed class ExportCatalog
{
    private ImmutableList<KeyValuePair<string, IExport>> _exports = [];

    /// <summary>Exports in the order they were added; the first is the default export.</summary>
    public IReadOnlyList<KeyValuePair<string, IExport>> Snapshot => _exports;

    /// <summary>Adds an export under a name not yet taken.</summary>
    public void Add(string name, IExport export)
    {
        ArgumentNullException.ThrowIfNull(export);
        ImmutableInterlocked.Update(ref _exports, list =>
            list.Exists(e => e.Key == name)
                ? throw new InvalidOperationException($"an export named '{name}' already exists")
                : list.Add(new(name, export)));
    }

    /// <summary>
    /// Finds an export. The empty name is the protocol's "default export": the export
    /// named "" if there is one, else the first export added.
    /// </summary>
    public bool TryFind(string name, out string canonicalName, out IExport export)
    {
        var exports = _exports;
        foreach (var entry in exports)
        {
            if (entry.Key == name)
            {
                (canonicalName, export) = (entry.Key, entry.Value);
                return true;
            }
        }

        if (name.Length == 0 && exports.Count > 0)
        {
            (canonicalName, export) = (exports[0].Key, exports[0].Value);
            return true;
        }

        (canonicalName, export) = (string.Empty, null!);
        return false;
    }
}
