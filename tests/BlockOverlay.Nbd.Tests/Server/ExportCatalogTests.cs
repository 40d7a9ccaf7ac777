using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>The catalog's bookkeeping of exports and their connections, without a server.</summary>
[TestFixture]
public sealed class ExportCatalogTests
{
    [Test]
    public void Thousands_of_exports_keep_their_order_and_are_found_by_name_until_removed()
    {
        // 1. Twenty thousand exports (a store's instances at scale), every fifth then removed.
        var catalog = new ExportCatalog();
        var exports = Enumerable.Range(0, 20_000).Select(i => (Name: $"vm{i}", Export: new MemoryExport(4096))).ToList();
        exports.ForEach(e => catalog.Add(e.Name, e.Export));
        var removed = exports.Where((_, i) => i % 5 == 0).ToList();
        removed.ForEach(e => Assert.That(catalog.Remove(e.Name)?.Export, Is.SameAs(e.Export)));
        var kept = exports.Where((_, i) => i % 5 != 0).ToList();

        // 2. LIST is the order of adding; the default export is the first left; every name finds its own export.
        Assert.That(catalog.VisibleTo(PeerIdentity.Anonymous).Select(e => e.Key), Is.EqualTo(kept.Select(e => e.Name)));
        Assert.That(catalog.TryFind("", PeerIdentity.Anonymous, out string defaultName, out _) && defaultName == "vm1");
        Assert.Multiple(() =>
        {
            foreach (var (name, export) in kept)
            {
                Assert.That(catalog.TryFind(name, PeerIdentity.Anonymous, out string found, out var exported) && found == name && ReferenceEquals(exported, export), name);
            }

            foreach (var (name, _) in removed)
            {
                Assert.That(catalog.TryFind(name, PeerIdentity.Anonymous, out _, out _) || catalog.Contains(name), Is.False, name);
            }
        });

        // 3. A removed name is free again, and comes back at the end; a taken one is refused.
        var again = new MemoryExport(4096);
        catalog.Add("vm0", again);
        Assert.Throws<ExportNameTakenException>(() => catalog.Add("vm1", new MemoryExport(4096)));
        Assert.That(catalog.Snapshot.Last().Key, Is.EqualTo("vm0"));
        Assert.That(catalog.TryFind("vm0", PeerIdentity.Anonymous, out _, out var back) && ReferenceEquals(back, again));
        Assert.That(catalog.Attach("vm0", exports[0].Export, PeerIdentity.Anonymous), Is.Null, "a connection to the removed export of that name is refused");
    }

    [Test]
    public void Exports_added_at_once_are_added_all_in_order_or_not_at_all()
    {
        var catalog = new ExportCatalog();
        catalog.Add("first", new MemoryExport(4096));
        var batch = Enumerable.Range(0, 1_000).Select(i => new KeyValuePair<string, IExport>($"vm{i}", new MemoryExport(4096))).ToList();

        // 1. A name already served, or one twice in the batch, adds none of the batch.
        Assert.Throws<ExportNameTakenException>(() => catalog.AddRange([.. batch, new("first", new MemoryExport(4096))]));
        Assert.Throws<ExportNameTakenException>(() => catalog.AddRange([.. batch, batch[500]]));
        Assert.That(catalog.Snapshot.Select(e => e.Key), Is.EqualTo(new[] { "first" }));
        Assert.That(batch.Select(e => catalog.Contains(e.Key) || catalog.ConnectionsTo(e.Key) != 0), Has.None.True);

        // 2. The batch comes after what was there, in its order; each export is found, attachable and removable.
        catalog.AddRange(batch);
        catalog.Add("last", new MemoryExport(4096));
        Assert.That(catalog.Snapshot.Select(e => e.Key), Is.EqualTo(new[] { "first" }.Concat(batch.Select(e => e.Key)).Append("last")));
        Assert.That(catalog.TryFind("vm999", PeerIdentity.Anonymous, out _, out var found) && ReferenceEquals(found, batch[999].Value));
        using (var attachment = catalog.Attach("vm7", batch[7].Value, PeerIdentity.Anonymous))
        {
            Assert.That(attachment, Is.Not.Null);
            Assert.That(catalog.ConnectionsTo("vm7"), Is.EqualTo(1));
        }

        Assert.That(catalog.Remove("vm7")?.Export, Is.SameAs(batch[7].Value));
        Assert.That(catalog.Contains("vm7"), Is.False);
    }

    [Test]
    public void An_export_the_peer_may_not_see_is_neither_found_nor_the_default()
    {
        var catalog = new ExportCatalog();
        var hidden = new RestrictedExport(new([new PeerRule(PeerRuleKind.Uid, 0)]));
        var open = new MemoryExport(4096);
        catalog.Add("", hidden);
        catalog.Add("disk", open);
        var stranger = new PeerIdentity { Uid = 1000, Gids = [1000] };

        Assert.That(catalog.TryFind("", stranger, out string name, out var export) && name == "disk" && ReferenceEquals(export, open),
            "the default for a peer is the first export it may see, even when one is named \"\"");
        Assert.That(catalog.VisibleTo(stranger).Select(e => e.Key), Is.EqualTo(new[] { "disk" }));
        Assert.That(catalog.Contains(""), Is.True, "the server itself still offers it");
    }

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
