using BlockOverlay.Host.Config;
using BlockOverlay.Host.Live;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The store a server serves, if any: opened first (every instance exported in the
/// catalog), closed last. Closing writes back and commits every instance (DESIGN.md, invariant 9),
/// then checkpoints the store and marks it cleanly shut down. With <c>takeover</c> (a store
/// on RBD) a current owner is fenced off first; if this server is fenced off by another's
/// takeover, it exits at once with a message: nothing it writes lands any more, so there is
/// nothing to close cleanly, and its control socket may be the new owner's (on this host).
/// </summary>
internal sealed class StoreService(ServeSettings settings, ExportCatalog catalog, ILogger logger, bool takeover) : IHostedService
{
    /// <summary>The exit code of a server fenced off by another's takeover.</summary>
    private const int FencedExitCode = 1;

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
            Host = await StoreHost.OpenAsync(Path, settings.Cache, catalog, logger, takeover);
            _ = ExitWhenFencedAsync(Host.Fenced, Path);
        }
    }

    private static async Task ExitWhenFencedAsync(Task fenced, string store)
    {
        await fenced;
        await Console.Error.WriteLineAsync(
            $"blockoverlay serve: store {store} was taken over by another server (serve --takeover), which fenced this one off: " +
            "its writes since are refused and it stops here; the instances are served by the new owner");
        Environment.Exit(FencedExitCode);
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
