using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>The catalog's bookkeeping of exports and their connections, without a server.</summary>
[TestFixture]
public sealed class ExportCatalogTests
{
    [Test]
    public void A_removal_that_may_not_disconnect_refuses_while_a_connection_is_attached()
    {
        var catalog = new ExportCatalog();
        var export = new MemoryExport(1 << 20);
        catalog.Add("disk", export);
        var attachment = catalog.Attach("disk", export, PeerIdentity.Anonymous);
        Assert.That(attachment, Is.Not.Null);

        var refused = Assert.Throws<ExportInUseException>(() => catalog.Remove("disk", disconnect: false));
        Assert.That(refused!.Connections, Is.EqualTo(1));
        Assert.That(catalog.TryFind("disk", PeerIdentity.Anonymous, out _, out _), Is.True, "a refused removal leaves the export served");
        Assert.That(attachment!.Ending.IsCancellationRequested, Is.False, "and its connection alone");

        attachment.Dispose();
        var removed = catalog.Remove("disk", disconnect: false);
        Assert.That(removed?.Detached.IsCompleted, Is.True, "no connection left to wait for");
        Assert.That(catalog.Attach("disk", export, PeerIdentity.Anonymous), Is.Null, "a connection that negotiated before the removal is refused, not cut later");
    }

    [Test]
    public async Task A_forced_removal_ends_the_connections_and_reports_when_they_are_gone()
    {
        var catalog = new ExportCatalog();
        var export = new MemoryExport(1 << 20);
        catalog.Add("disk", export);
        var attachment = catalog.Attach("disk", export, PeerIdentity.Anonymous)!;

        var removed = catalog.Remove("disk", disconnect: true);
        Assert.That(attachment.Ending.IsCancellationRequested, Is.True);
        Assert.That(removed!.Value.Detached.IsCompleted, Is.False);
        attachment.Dispose();
        await removed.Value.Detached.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(catalog.Remove("disk"), Is.Null);
    }
}
