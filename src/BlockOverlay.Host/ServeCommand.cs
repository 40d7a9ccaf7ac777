using System.CommandLine;
using System.Runtime.InteropServices;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Host.Config;
using BlockOverlay.Host.Live;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host;

/// <summary>
/// <c>blockoverlay serve</c>: exports disks over NBD until SIGTERM or SIGINT: every instance
/// of a store under its own name, and plain exports. What to serve, where, and how comes
/// from the flags, else from a config file (<c>--config</c> or <c>$BLOCKOVERLAY_CONFIG</c>),
/// else from defaults (<see cref="ServeSettings"/>). With nothing to serve it makes (once) and
/// serves a demo store in ./var: an ext4 base image and two instances on it, on
/// var/blockoverlay.sock and 127.0.0.1:10809, so a first run works out of the box.
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var config = new Option<string>("--config")
        {
            Description = $"A JSON config file (default: ${HostConfig.EnvironmentVariable} when set). A flag given here replaces that key of the config.",
        };
        var exports = new Option<string[]>("--export")
        {
            Description = "An export, as NAME=memory:SIZE or NAME=file:PATH[:ro]. Repeatable. With no store and no export: the demo store in ./var (with --stdio: " + ServeSettings.DemoExport + ").",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var listens = new Option<string[]>("--listen")
        {
            Description = $"Where to listen: tcp:HOST:PORT or unix:PATH. Repeatable. Default: the config's, else tcp:127.0.0.1:{ListenAddress.DefaultPort} " +
                          "(unless started by systemd socket activation or with --stdio).",
            Arity = ArgumentArity.ZeroOrMore,
        };
        var stdio = new Option<bool>("--stdio")
        {
            Description = "Serve one client over standard input and output, then exit (for nbd_connect_command).",
        };
        var store = new Option<string>("--store") { Description = "Serve every instance of this store, each as an export of its name." };
        var metrics = new Option<string>("--metrics")
        {
            Description = "Serve Prometheus metrics at http://HOST:PORT/metrics, given as tcp:HOST:PORT (e.g. tcp:127.0.0.1:9810).",
        };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug events too (the same as --log-level debug)." };
        var logLevel = new Option<string>("--log-level") { Description = $"The least important events logged: {LogChoices.Levels} (default: information)." };
        var logFormat = new Option<string>("--log-format")
        {
            Description = "text (default): one line per event, for people; json: one JSON object per line, for log shippers.",
        };

        var command = new Command("serve", "Serve disks over NBD.") { config, store, exports, listens, stdio, metrics, verbose, logLevel, logFormat };
        command.SetAction((parse, _) => RunAsync(new ServeFlags
        {
            Config = parse.GetValue(config),
            Store = parse.GetValue(store),
            Exports = parse.GetValue(exports) ?? [],
            Listen = parse.GetValue(listens) ?? [],
            Stdio = parse.GetValue(stdio),
            Metrics = parse.GetValue(metrics),
            Verbose = parse.GetValue(verbose),
            LogLevel = parse.GetValue(logLevel),
            LogFormat = parse.GetValue(logFormat),
        }));
        return command;
    }

    /// <summary>
    /// Worker threads the pool starts without waiting (its default is one per core): what is
    /// left of blocking on pool threads (O_DIRECT reads, locks held across a large copy) then
    /// costs one tenant's request a thread, not every tenant's requests the pool's slow thread
    /// injection. Measured beside a neighbour writing ~800 MiB/s with flushes on 2 cores: a
    /// steady tenant's p99 write latency 6.4-8.2 ms with the default, 4.0 ms with 16.
    /// </summary>
    private const int MinWorkerThreads = 16;

    private static async Task<int> RunAsync(ServeFlags flags)
    {
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        ThreadPool.SetMinThreads(Math.Max(workers, MinWorkerThreads), completionPorts);
        HostConfig? config;
        ServeSettings settings;
        try
        {
            config = HostConfig.LoadFrom(flags.Config);
            settings = ServeSettings.Resolve(flags, config);
        }
        catch (FormatException e)
        {
            return Fail(e.Message);
        }

        using var loggers = HostLogging.Create(settings.LogLevel, settings.LogFormat);
        var logger = loggers.CreateLogger("blockoverlay");
        if (config is not null)
        {
            ConfigLog.Loaded(logger, config.FilePath);
        }

        // Before anything is served: a SIGTERM that arrives while the store opens or the
        // listeners start must stop the server cleanly once it is up, not kill it (exit 143).
        using var stopSignal = new StopSignal();
        var catalog = new ExportCatalog();
        var opened = new List<IExport>();
        StoreHost? host = null;
        ControlServer? control = null;
        try
        {
            // The embedded default (make run): the demo store, made on the first run.
            string? store = settings.Demo
                ? await Demo.DemoStore.EnsureAsync(ServeSettings.DemoDirectory, settings.LogFormat == LogFormat.Text ? Console.Error : TextWriter.Null)
                : settings.Store;
            if (store is { } storePath)
            {
                host = await StoreHost.OpenAsync(storePath, settings.Cache, catalog, logger);
                control = StartControl(storePath, host, logger);
            }

            foreach (var spec in settings.Exports)
            {
                var export = OpenExport(spec);
                opened.Add(export);
                catalog.Add(spec.Name, export);
            }

            await using var server = new NbdServer(catalog, new NbdServerOptions(), loggers);
            // The metrics before the listeners: the flush histogram sees every flush.
            using var metrics = settings.Metrics is null ? null : new ServerMetrics(host?.Cache, server.Counters);
            await using var metricsEndpoint = settings.Metrics is { } metricsAddress && metrics is not null
                ? new MetricsEndpoint(metricsAddress, metrics.WriteAsync)
                : null;
            if (metricsEndpoint is not null)
            {
                var scrapedAt = await metricsEndpoint.StartAsync();
                HostLog.MetricsServed(logger, scrapedAt);
            }

            if (settings.Stdio)
            {
                // One client on standard input and output, served until it hangs up; signals
                // from now on end the process as they did before the server was up.
                stopSignal.Dispose();
                if (!stopSignal.Requested.IsCompleted)
                {
                    await server.ServeStreamAsync(Console.OpenStandardInput(), Console.OpenStandardOutput(), "stdio");
                }

                return 0;
            }

            var activated = SystemdSockets.Take();
            foreach (var socket in activated)
            {
                server.Adopt(socket);
            }

            var bound = activated.Select(s => s.LocalEndPoint).OfType<System.Net.EndPoint>().ToList();
            foreach (var address in settings.AddressesBeside(activated.Count))
            {
                bound.Add(server.Listen(address));
            }

            // The hints are for a person at a terminal; a log shipper wants nothing but JSON
            // lines on stderr (the listeners are logged as events either way).
            if (settings.LogFormat == LogFormat.Text)
            {
                Console.Error.Write(AttachHints.Describe(catalog.Snapshot.Select(e => e.Key), bound));
            }

            await stopSignal.Requested;
            HostLog.Stopping(logger);
            await server.StopAsync();
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Net.Sockets.SocketException
                                       or InvalidOperationException or StoreFormatException)
        {
            return Fail(e.Message);
        }
        finally
        {
            if (control is not null)
            {
                await control.DisposeAsync();
            }

            foreach (var export in opened)
            {
                await export.DisposeAsync();
            }

            // Instances write back and commit what they hold as they close (invariant 9); then
            // the store checkpoints every instance and is marked cleanly shut down.
            if (host is not null)
            {
                await host.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// The control socket next to the store, through which the CLI changes instances live.
    /// Without it the server still serves (the CLI then says the store is in use), so a
    /// socket that cannot be made is a warning, not a reason to stop.
    /// </summary>
    private static ControlServer? StartControl(string storePath, StoreHost host, ILogger logger)
    {
        var control = new ControlServer(ControlServer.PathFor(storePath), host.RunAsync, logger);
        try
        {
            control.Start();
            HostLog.ControlListening(logger, control.Path);
            return control;
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or UnauthorizedAccessException)
        {
            HostLog.ControlUnavailable(logger, control.Path, e.Message);
            return null;
        }
    }

    private static IExport OpenExport(ExportSpec spec)
    {
        try
        {
            return spec.Open();
        }
        catch (IOException e) when (spec is FileExportSpec file)
        {
            // The usual cause is the image's lock: it is exported twice, or another server has it.
            throw new IOException($"export '{spec.Name}': cannot open {file.Path}: {e.Message} " +
                                  "(a writable image can be served by one export of one server at a time)", e);
        }
    }

    /// <summary>
    /// SIGTERM and SIGINT, caught from the moment it is made: the first asks for a clean stop
    /// (<see cref="Requested"/>), a second one exits at once.
    /// </summary>
    private sealed class StopSignal : IDisposable
    {
        private readonly TaskCompletionSource _stop = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly PosixSignalRegistration _term;
        private readonly PosixSignalRegistration _interrupt;

        public StopSignal()
        {
            _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        }

        public Task Requested => _stop.Task;

        public void Dispose()
        {
            _term.Dispose();
            _interrupt.Dispose();
        }

        private void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (!_stop.TrySetResult())
            {
                Environment.Exit(130);
            }
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"blockoverlay serve: {message}");
        return 1;
    }
}
