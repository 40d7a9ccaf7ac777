using System.Collections.Immutable;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The exports a server offers, by name, and the connections attached to each. Exports
/// come and go while the server runs (instances are created and deleted live).
/// </summary>
/// <remarks>
/// Readers see an immutable snapshot (<see cref="Table"/>, indexed by name), so a connection
/// negotiating takes no lock and never races with an export being added or removed.
/// Attachments are counted under <see cref="_lock"/>; each attachment has a cancellation source
/// that ends its connection: all of an export's when it is removed, those of peers its rules no
/// longer allow when its rules change (<see cref="Rejudge"/>). A connection attaches before the server accepts its choice of
/// export; one whose export was removed first fails to attach and is refused, so no connection
/// outlives its export's removal and a removal that refuses while connections exist sees every
/// accepted one. Lookups take the peer: an export it may not see is left out, so the protocol
/// layer answers for it exactly as for a name that does not exist.
/// </remarks>
public sealed class ExportCatalog
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Attachments> _attached = new(StringComparer.Ordinal);
    private volatile Table _exports = Table.Empty; // replaced whole under _lock; read without it

    /// <summary>Exports in the order they were added; the first is the default export.</summary>
    public IEnumerable<KeyValuePair<string, IExport>> Snapshot => _exports.InOrder.Values;

    /// <summary>Whether an export of that name is offered now (to anyone).</summary>
    public bool Contains(string name) => _exports.ByName.ContainsKey(name);

    /// <summary>Adds an export under a name not yet taken (else <see cref="ExportNameTakenException"/>).</summary>
    public void Add(string name, IExport export) => AddRange([new(name, export)]);

    /// <summary>
    /// Adds exports, in order, under names not yet taken; all or none: one name taken (here or
    /// twice in <paramref name="exports"/>) adds nothing and throws <see cref="ExportNameTakenException"/>.
    /// A server starting with thousands of instances adds them at once: one new table built in
    /// place, not one per export (each of which would copy a path of both trees).
    /// </summary>
    public void AddRange(IReadOnlyCollection<KeyValuePair<string, IExport>> exports)
    {
        ArgumentNullException.ThrowIfNull(exports);
        foreach (var (_, export) in exports)
        {
            ArgumentNullException.ThrowIfNull(export);
        }

        lock (_lock)
        {
            _exports = _exports.AddRange(exports);
            foreach (var (name, _) in exports)
            {
                _attached[name] = new Attachments();
            }
        }
    }

    /// <summary>
    /// Removes an export: no new connection can choose it, and the connections attached to it
    /// are told to end (they finish the requests they started, then close). Returns the
    /// export, a task that completes when its last connection has detached, and how many
    /// were attached; null if there is no such export. Unless <paramref name="disconnect"/>, an export with
    /// connections stays and <see cref="ExportInUseException"/> says how many: the check and
    /// the removal are one step, so a connection attaching meanwhile is either counted or refused.
    /// </summary>
    public (IExport Export, Task Detached, int Connections)? Remove(string name, bool disconnect = true)
    {
        Attachments attachments;
        IExport removed;
        int connections;
        lock (_lock)
        {
            if (!_exports.ByName.TryGetValue(name, out var entry))
            {
                return null;
            }

            if (!disconnect && _attached[name].Count > 0)
            {
                throw new ExportInUseException(name, _attached[name].Count);
            }

            _exports = _exports.Remove(name, entry.Order);
            attachments = _attached[name];
            _attached.Remove(name);
            removed = entry.Export;
            connections = attachments.Count;
            attachments.Removed = true;
            if (connections == 0)
            {
                attachments.Drained.TrySetResult();
            }
        }

        // Outside the lock: cancelling runs the connections' callbacks. An attachment that
        // detaches meanwhile is cancelled all the same, harmlessly.
        foreach (var attachment in attachments.Snapshot())
        {
            attachment.End(revoked: false);
        }

        return (removed, attachments.Drained.Task, connections);
    }

    /// <summary>
    /// Judges the connections attached to the export again by its access rules now (after they
    /// changed): each whose peer they no longer allow is told to end, as for a removed export
    /// (it finishes the requests it started, then closes). Returns how many were told.
    /// </summary>
    public int Rejudge(string name)
    {
        List<ExportAttachment> revoked;
        lock (_lock)
        {
            if (!_exports.ByName.TryGetValue(name, out var entry) || !_attached.TryGetValue(name, out var attachments))
            {
                return 0;
            }

            revoked = [.. attachments.Snapshot().Where(a => !entry.Export.IsVisibleTo(a.Peer))];
        }

        revoked.ForEach(a => a.End(revoked: true));
        return revoked.Count;
    }

    /// <summary>Connections attached to the export now.</summary>
    public int ConnectionsTo(string name)
    {
        lock (_lock)
        {
            return _attached.TryGetValue(name, out var a) ? a.Count : 0;
        }
    }

    /// <summary>
    /// Records a connection of <paramref name="peer"/> to the export it negotiated until the
    /// result is disposed; its token is cancelled when the export is removed, or when its rules
    /// change and no longer allow the peer. Null if that export is gone (removed while the
    /// connection negotiated, perhaps replaced by a new export of the same name).
    /// </summary>
    public ExportAttachment? Attach(string name, IExport export, PeerIdentity peer)
    {
        lock (_lock)
        {
            if (!_attached.TryGetValue(name, out var attachments) || !_exports.ByName.TryGetValue(name, out var entry) || !ReferenceEquals(entry.Export, export))
            {
                return null;
            }

            var attachment = new ExportAttachment(peer, a => Detach(attachments, a));
            attachments.Add(attachment);
            return attachment;
        }
    }

    /// <summary>The exports <paramref name="peer"/> may see (<see cref="ExportVisibility"/>), in the order they were added.</summary>
    public IReadOnlyList<KeyValuePair<string, IExport>> VisibleTo(PeerIdentity peer) => [.. _exports.InOrder.Values.Where(e => e.Value.IsVisibleTo(peer))];

    /// <summary>
    /// Finds an export <paramref name="peer"/> may see; one it may not is not found, as if it did
    /// not exist. The empty name is the protocol's "default export": the export named "" if
    /// there is one, else the first export added (of those the peer may see).
    /// </summary>
    public bool TryFind(string name, PeerIdentity peer, out string canonicalName, out IExport export)
    {
        var exports = _exports; // one snapshot for both questions
        if (exports.ByName.TryGetValue(name, out var entry) && entry.Export.IsVisibleTo(peer))
        {
            (canonicalName, export) = (name, entry.Export);
            return true;
        }

        if (name.Length == 0 && exports.InOrder.Values.FirstOrDefault(e => e.Value.IsVisibleTo(peer)) is { Value: not null } first)
        {
            (canonicalName, export) = (first.Key, first.Value);
            return true;
        }

        (canonicalName, export) = (string.Empty, null!);
        return false;
    }

    private void Detach(Attachments attachments, ExportAttachment attachment)
    {
        lock (_lock)
        {
            if (attachments.Remove(attachment) && attachments.Count == 0 && attachments.Removed)
            {
                attachments.Drained.TrySetResult();
            }
        }
    }

    /// <summary>
    /// One state of the catalog, never changed: the exports by name (a lookup per connection and
    /// per add, not a scan: a server holds thousands) and by the order they were added (LIST,
    /// the default export). Each change makes a new one sharing all but O(log n) of its nodes per export
    /// it adds or removes.
    /// </summary>
    private sealed class Table(
        ImmutableDictionary<string, (long Order, IExport Export)> byName,
        ImmutableSortedDictionary<long, KeyValuePair<string, IExport>> inOrder,
        long added)
    {
        public static readonly Table Empty = new(
            ImmutableDictionary.Create<string, (long, IExport)>(StringComparer.Ordinal),
            ImmutableSortedDictionary<long, KeyValuePair<string, IExport>>.Empty,
            0);

        public ImmutableDictionary<string, (long Order, IExport Export)> ByName { get; } = byName;

        public ImmutableSortedDictionary<long, KeyValuePair<string, IExport>> InOrder { get; } = inOrder;

        public Table AddRange(IEnumerable<KeyValuePair<string, IExport>> exports)
        {
            var byName = ByName.ToBuilder();
            var inOrder = InOrder.ToBuilder();
            long next = added;
            foreach (var (name, export) in exports)
            {
                if (byName.ContainsKey(name))
                {
                    throw new ExportNameTakenException(name);
                }

                byName.Add(name, (next, export));
                inOrder.Add(next, new(name, export));
                next++;
            }

            return new(byName.ToImmutable(), inOrder.ToImmutable(), next);
        }

        public Table Remove(string name, long order) => new(ByName.Remove(name), InOrder.Remove(order), added);
    }

    /// <summary>The connections of one export; guarded by the catalog's lock.</summary>
    private sealed class Attachments
    {
        private readonly HashSet<ExportAttachment> _attached = [];

        public int Count => _attached.Count;

        /// <summary>The export was removed: <see cref="Drained"/> completes when the last one detaches.</summary>
        public bool Removed { get; set; }

        public TaskCompletionSource Drained { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Add(ExportAttachment attachment) => _attached.Add(attachment);

        public bool Remove(ExportAttachment attachment) => _attached.Remove(attachment);

        public ExportAttachment[] Snapshot() => [.. _attached];
    }
}

/// <summary>An export was not removed because connections are attached to it.</summary>
public sealed class ExportInUseException(string name, int connections)
    : InvalidOperationException($"export '{name}' has {connections} connection(s)")
{
    public int Connections { get; } = connections;
}

/// <summary>
/// An export was not added because its name is taken: by a plain export, or by an instance,
/// which a server exports under its own name. An operator's choice of names, not a bug.
/// </summary>
public sealed class ExportNameTakenException(string name)
    : InvalidOperationException($"an export named '{name}' already exists");

/// <summary>A connection's hold on its export: disposed when the connection ends.</summary>
public sealed class ExportAttachment : IDisposable
{
    private readonly Action<ExportAttachment> _release;
    private readonly CancellationTokenSource _ending = new();
    private int _released;
    private int _revoked;

    internal ExportAttachment(PeerIdentity peer, Action<ExportAttachment> release)
    {
        Peer = peer;
        _release = release;
        Ending = _ending.Token;
    }

    /// <summary>Who holds it: what the export's rules are judged against again when they change.</summary>
    public PeerIdentity Peer { get; }

    /// <summary>Cancelled when the export is removed, or its rules no longer allow the peer: the connection should end.</summary>
    public CancellationToken Ending { get; }

    /// <summary>Whether it ended because the export's rules no longer allow the peer.</summary>
    public bool Revoked => Volatile.Read(ref _revoked) == 1;

    internal void End(bool revoked)
    {
        if (revoked)
        {
            Volatile.Write(ref _revoked, 1);
        }

        _ending.Cancel();
    }

    // The source is not disposed: it has no timer and no linked token to let go of, and a
    // removal or a change of rules may cancel it at any moment, also while the connection detaches.
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _released, 1) == 0)
        {
            _release(this);
        }
    }
}
