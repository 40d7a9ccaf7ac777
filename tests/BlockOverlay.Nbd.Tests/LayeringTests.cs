using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests;

/// <summary>
/// The protocol layer sees exports through the contract alone: the Nbd assembly references
/// BlockOverlay.Exports and no other project of ours (not Engine, Store or Io).
/// </summary>
public class LayeringTests
{
    [Test]
    public void Nbd_references_only_the_export_contract_among_our_projects()
    {
        var ours = typeof(NbdServer).Assembly.GetReferencedAssemblies()
            .Select(a => a.Name!)
            .Where(name => name.StartsWith("BlockOverlay.", StringComparison.Ordinal))
            .ToList();

        Assert.That(ours, Is.EqualTo(new[] { "BlockOverlay.Exports" }));
    }
}
