using BlockOverlay.Host.Config;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The composition root of <c>serve</c>: the server as a generic host of hosted services,
/// started in the order registered and stopped in the reverse order. That one order is the
/// server's start-up and its clean shutdown: listeners stop first (connections finish their
/// requests), then the metrics endpoint and the control socket (commands in progress end),
/// then the plain exports, and last the store, whose instances write back and commit before
/// it checkpoints and is marked clean.
/// </summary>
/// <remarks>
/// The host is built empty: no configuration sources (the config file is the project's own,
/// <see cref="HostConfig"/>), no reflection-bound options, and no logging providers of its
/// own, so it logs nothing and the server's events keep their format (<see cref="HostLogging"/>).
/// The services are made here, by hand, and handed to the container as they are.
/// </remarks>
internal static class ServeHost
{
    public static IHost Build(ServeSettings settings, ILoggerFactory loggers, bool takeover = false)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(settings: null);
        var services = builder.Services;
        // Closing the store writes back what instances hold: it takes what it takes, and the
        // host must not give up on it half way (its default is 30 s).
        services.Configure<HostOptions>(options => options.ShutdownTimeout = Timeout.InfiniteTimeSpan);
        services.RemoveAll<IHostLifetime>();
        services.AddSingleton<SignalLifetime>();
        services.AddSingleton<IHostLifetime>(provider => provider.GetRequiredService<SignalLifetime>());

        var logger = loggers.CreateLogger("blockoverlay");
        var catalog = new ExportCatalog();
        var server = new NbdServer(catalog, settings.Limits with { Tls = settings.Tls.Load() }, loggers);
        var store = new StoreService(settings, catalog, logger, takeover);
        services.AddHostedService(_ => store);
        services.AddHostedService(_ => new ExportsService(settings.Exports, catalog));
        services.AddHostedService(_ => new ControlService(store, logger));
        services.AddHostedService(_ => new MetricsService(settings.Metrics, () => new ServerMetrics(store.Host?.Cache, server.Counters), logger));
        services.AddHostedService(provider => new ListenerService(server, settings, catalog, provider.GetRequiredService<SignalLifetime>(),
            provider.GetRequiredService<IHostApplicationLifetime>(), logger));
        return builder.Build();
    }
}
