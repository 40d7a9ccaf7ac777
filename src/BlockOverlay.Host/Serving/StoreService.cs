using BlockOverlay.Host.Config;
using BlockOverlay.Host.Live;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The store a server serves, if any: opened first (every instance exported in the
/// catalog), closed last. Closing writes back and commits every instance (invariant 9),
/// then checkpoints the store and marks it cleanly shut down.
/// </summary>
internal sealed class StoreService(ServeSettings settings, ExportCatalog catalog, ILogger logger) : IHostedService
{
    /// <summary>The open store, once started with one.</summary>
    public StoreHost? Host { get; private set; }

    /// <summary>The store file served, once started with one.</summary>
    public string? Path { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // The embedded default (make run): the demo store, made on the first run.
        Path = settings.Demo
            ? await Demo.DemoStore.EnsureAsync(ServeSettings.DemoDirectory, settings.LogFormat == LogFormat.Text ? Console.Error : TextWriter.Null)
            : settings.Store;
        if (Path is not null)
        {
            Host = await StoreHost.OpenAsync(Path, settings.Cache, catalog, logger);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Host is not null)
        {
            await Host.DisposeAsync();
            Host = null;
        }
    }
}
