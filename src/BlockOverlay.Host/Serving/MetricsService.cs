using System.Net;
using BlockOverlay.Host.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The Prometheus endpoint, when one is asked for: a thin start and stop around
/// <see cref="ServerMetrics"/> and <see cref="MetricsEndpoint"/>. Started after the store
/// (its metrics read the store's cache) and before the listeners, so the flush histogram
/// sees every flush.
/// </summary>
internal sealed class MetricsService(IPEndPoint? address, Func<ServerMetrics> collect, ILogger logger) : IHostedService
{
    private ServerMetrics? _metrics;
    private MetricsEndpoint? _endpoint;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (address is null)
        {
            return;
        }

        var metrics = collect();
        _metrics = metrics;
        var endpoint = new MetricsEndpoint(address, metrics.WriteAsync, logger: logger);
        _endpoint = endpoint;   // stopped even if it fails to start (it then has nothing to close)
        var scrapedAt = await endpoint.StartAsync(cancellationToken);
        HostLog.MetricsServed(logger, scrapedAt);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_endpoint is not null)
        {
            await _endpoint.DisposeAsync();
            _endpoint = null;
        }

        _metrics?.Dispose();
        _metrics = null;
    }
}
