using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Live;

/// <summary>
/// The store a running server holds: the store, its write-back cache, and one export per
/// instance in the server's catalog, kept in step as instances are created and deleted
/// through the control socket. The server never restarts for that.
/// </summary>
/// <remarks>
/// Locking: a command holds the names it acts on (<see cref="_names"/>): commands on different
/// instances run side by side, so a long commit or clone holds up only commands on its own
/// instances, and a create and a delete of one name never interleave. The store serializes
/// creates and deletes itself. <see cref="_exports"/> is also read by stat, under its own
/// monitor. Closing: the exports first (each writes back and commits
/// its instance), then the cache, then the store (a checkpoint, marked clean).
/// </remarks>
internal sealed class StoreHost : IAsyncDisposable
{
    /// <summary>How long a forced delete waits for the instance's connections to finish their requests.</summary>
    private static readonly TimeSpan DetachTimeout = TimeSpan.FromSeconds(30);

    private readonly NameLocks _names = new();
    private readonly Dictionary<string, InstanceExport> _exports = new(StringComparer.Ordinal);
    private readonly StoreSession _session;
    private readonly ExportCatalog _catalog;
    private readonly ILogger _logger;

    private StoreHost(StoreSession session, WriteBackCache cache, ExportCatalog catalog, ILogger logger)
    {
        _session = session;
        Cache = cache;
        _catalog = catalog;
        _logger = logger;
    }

    public UpperStore Store => _session.Store;

    public WriteBackCache Cache { get; }

    /// <summary>The base images open for the served instances, shared (a create on one of them does not read it again).</summary>
    public BaseImages Bases { get; } = new(StoreDevices.Ceph);

    /// <summary>Completes when another server took the store over (RBD) and this one can no longer write to it.</summary>
    public Task Fenced => _session.Fenced;

    /// <summary>Opens the store and serves every instance whose base is intact (DESIGN.md, invariant 8: the others keep serving).</summary>
    public static async Task<StoreHost> OpenAsync(string path, CacheOptions cacheOptions, ExportCatalog catalog, ILogger logger, bool takeover = false)
    {
        var session = await StoreSession.OpenAsync(path, takeover, () => HostLog.StoreLockWait(logger, StoreDevices.Describe(path), StoreDevices.LockWait.TotalSeconds));
        var host = new StoreHost(session, new WriteBackCache(session.Store, cacheOptions, logger), catalog, logger);
        var opened = new List<(string Name, InstanceExport Export)>(session.Store.Instances.Count);
        try
        {
            foreach (var instance in session.Store.Instances)
            {
                if (instance.Definition.Unclean)
                {
                    HostLog.InstanceUnclean(logger, instance.Name);
                }

                try
                {
                    opened.Add((instance.Name, await InstanceExport.OpenAsync(host.Cache, instance, host.Bases)));
                }
                catch (BaseImageChangedException e)
                {
                    HostLog.InstanceRefused(logger, instance.Name, e.Message);
                }
            }

            host.Publish(opened);
        }
        catch
        {
            foreach (var (_, export) in opened)
            {
                await export.DisposeAsync();
            }

            throw;
        }

        HostLog.StoreOpened(logger, session.Store.Instances.Count, session.Store.WasClean ? "cleanly" : "after a crash: recovered");
        return host;
    }

    /// <summary>
    /// Carries out one instance command on the live store, once it holds the instance names
    /// the command acts on. <paramref name="stop"/> (the server stopping) ends the wait for
    /// them, and a copy between chunks; the command then fails, having changed nothing.
    /// </summary>
    public async Task<InstanceResponse> RunAsync(InstanceRequest request, Action<ProgressReport> progress, CancellationToken stop)
    {
        IDisposable names;
        try
        {
            names = await _names.LockAsync(request.InstanceNames(), stop);
        }
        catch (OperationCanceledException)
        {
            return new CommandFailed("the server is stopping");
        }

        using (names)
        {
            try
            {
                return await InstanceOperations.RunAsync(request, Store, this, progress, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return new CommandFailed("the server is stopping");
            }
        }
    }

    /// <summary>Whether an export of that name is served now (a plain export, or an instance).</summary>
    public bool Serves(string name) => _catalog.Contains(name);

    /// <summary>Exports an instance under its name; it is reachable when this returns.</summary>
    public async Task ServeAsync(StoreInstance instance)
    {
        var export = await InstanceExport.OpenAsync(Cache, instance, Bases);
        try
        {
            Publish([(instance.Name, export)]);
        }
        catch
        {
            await export.DisposeAsync();
            throw;
        }
    }

    /// <summary>Puts opened exports in the catalog, all in one step (a start adds thousands), and in <see cref="_exports"/>; none if a name is taken.</summary>
    private void Publish(IReadOnlyCollection<(string Name, InstanceExport Export)> exports)
    {
        _catalog.AddRange([.. exports.Select(e => new KeyValuePair<string, IExport>(e.Name, e.Export))]);
        lock (_exports)
        {
            foreach (var (name, export) in exports)
            {
                _exports[name] = export;
            }
        }
    }

    /// <summary>
    /// Deletes a served instance with <paramref name="delete"/>. With connections attached it
    /// refuses, unless forced: then the connections finish the requests they started and close
    /// (each writing back as it goes, like any disconnect). What is still dirty then is not
    /// written back, since the delete frees it. If the delete fails, the instance is served
    /// again, dirty data and all; only its connections were ended.
    /// </summary>
    public async Task DeleteAsync(string name, bool force, Func<Task> delete)
    {
        (IExport Export, Task Detached, int Connections)? removed;
        try
        {
            removed = _catalog.Remove(name, disconnect: force);
        }
        catch (ExportInUseException e)
        {
            throw new InstanceException(
                $"instance '{name}' has {e.Connections} connection(s): detach them first, or use --force to disconnect them (after their data is written back)");
        }

        InstanceExport? export;
        lock (_exports)
        {
            _exports.TryGetValue(name, out export);
        }

        if (removed is { } stopping)
        {
            HostLog.InstanceDetaching(_logger, name, stopping.Connections);
            try
            {
                await stopping.Detached.WaitAsync(DetachTimeout);
            }
            catch (TimeoutException)
            {
                // A connection still busy after its export was removed: delete anyway (its late
                // requests fail), rather than leave an instance half removed.
                HostLog.DetachTimedOut(_logger, name, DetachTimeout.TotalSeconds);
            }
        }

        if (export is null)
        {
            await delete(); // not served (its base changed): nothing to stop
            return;
        }

        try
        {
            await export.DeleteAsync(delete);
        }
        catch
        {
            if (removed is not null)
            {
                _catalog.Add(name, export);
            }

            throw;
        }

        lock (_exports)
        {
            _exports.Remove(name);
        }
    }

    /// <summary>
    /// After an instance's access rules changed: its open connections whose peers the new rules
    /// do not allow are ended (they finish the requests they started), and that is logged.
    /// </summary>
    public void RejudgeAccess(string name)
    {
        int ended = _catalog.Rejudge(name);
        if (ended > 0)
        {
            HostLog.AccessRevoked(_logger, name, ended);
        }
    }

    /// <summary>The served export of an instance and its connections, or null if it is not served.</summary>
    public (InstanceExport Export, int Connections)? Served(string name)
    {
        lock (_exports)
        {
            return _exports.TryGetValue(name, out var export) ? (export, _catalog.ConnectionsTo(name)) : null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<InstanceExport> exports;
        lock (_exports)
        {
            exports = [.. _exports.Values];
            _exports.Clear();
        }

        // One instance that cannot write back must not cost the others theirs: each closes on
        // its own, what failed stays in the cache (which tries once more), and the store is
        // closed whatever happened.
        try
        {
            foreach (var export in exports)
            {
                try
                {
                    await export.DisposeAsync();
                }
#pragma warning disable CA1031 // Each export closes on its own; every failure is logged, a bug with its stack.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    LogWriteBackFailure(e);
                }
            }

            try
            {
                await Cache.DisposeAsync();
            }
            catch (AggregateException e)
            {
                foreach (var failure in e.InnerExceptions)
                {
                    LogWriteBackFailure(failure);
                }
            }
        }
        finally
        {
            await _session.DisposeAsync();
        }
    }

    /// <summary>A failed write-back at shutdown: told by its message, or, for a bug, with its stack.</summary>
    private void LogWriteBackFailure(Exception e)
    {
        if (ExportFailures.Classify(e) is null)
        {
            HostLog.WriteBackCrashed(_logger, e);
        }
        else
        {
            HostLog.WriteBackFailed(_logger, e.Message);
        }
    }
}
