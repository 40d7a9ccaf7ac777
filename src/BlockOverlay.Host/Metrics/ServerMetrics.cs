using BlockOverlay.Engine.Cache;
using BlockOverlay.Nbd.Server;
using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// What <c>/metrics</c> shows: the evidence for isolation (per-instance flush cost, dirty
/// data, background write-back, throttling), the store's bytes written by reason, and the
/// NBD server's traffic (connections, requests by command, errors by code, bytes moved), and
/// the garbage collector's pauses, which every connection feels at once.
/// <para>
/// A prometheus-net registry of its own (no process metrics), its families created
/// here with the documented names, labels, help and types. Their values are copied from the
/// live counters at the start of each scrape (<see cref="WriteAsync"/>; not in a registry
/// before-collect callback, whose failures the library only traces, so a scrape that cannot
/// read the counters fails instead of showing stale values); only the flush latency
/// histogram is fed as flushes happen (<see cref="CacheFamilies"/>). Without a cache (no store
/// served) the per-instance families are shown empty and the store's are left out; without a
/// server, the server's.
/// </para>
/// </summary>
internal sealed class ServerMetrics : IDisposable
{
    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly CacheFamilies? _cache;
    private readonly NbdFamilies? _server;
    private readonly RuntimeFamilies _runtime;

    public ServerMetrics(WriteBackCache? cache, ServerCounters? server)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(_registry);
        var instances = new InstanceFamilies(factory);
        _cache = cache is null ? null : new CacheFamilies(cache, instances, factory);
        _server = server is null ? null : new NbdFamilies(server, factory);
        _runtime = new RuntimeFamilies(factory);
    }

    /// <summary>Writes the exposition of the counters as they are now: what the endpoint serves. Scrapes may call it concurrently.</summary>
    public Task WriteAsync(Stream to, CancellationToken cancel)
    {
        _cache?.Update();
        _server?.Update();
        _runtime.Update();
        return _registry.CollectAndExportAsTextAsync(to, cancel);
    }

    /// <summary>The exposition a scrape would get now.</summary>
    public async Task<string> RenderAsync()
    {
        using var text = new MemoryStream();
        await WriteAsync(text, CancellationToken.None);
        return PrometheusConstants.ExportEncoding.GetString(text.ToArray());
    }

    /// <summary>Stops listening to the cache's flushes.</summary>
    public void Dispose() => _cache?.Dispose();
}
