using System.CommandLine;
using BlockOverlay.Host.Config;
using BlockOverlay.Host.Serving;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Listeners;
using Microsoft.Extensions.Hosting;
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
        var socketMode = new Option<string>("--socket-mode")
        {
            Description = "The mode of the unix sockets --listen makes, in octal (default 0660: the owner and the group). 0666 lets every local user connect.",
        };
        var stdio = new Option<bool>("--stdio")
        {
            Description = "Serve one client over standard input and output, then exit (for nbd_connect_command).",
        };
        var store = new Option<string>("--store") { Description = "Serve every instance of this store (a file, or rbd:POOL/IMAGE), each as an export of its name." };
        var takeover = new Option<bool>("--takeover")
        {
            Description = "For an rbd: store held by a dead (or paused, or cut off) server: break its lock, fence it off so it can never write again, recover and serve.",
        };
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

        var tls = new Option<string>("--tls")
        {
            Description = $"NBD STARTTLS: {TlsSettings.Modes} (default off). on serves plain and TLS clients; require refuses every option before STARTTLS.",
        };
        var tlsCert = new Option<string>("--tls-cert") { Description = "The server's X.509 certificate (PEM; intermediates may follow it), for --tls on or require." };
        var tlsKey = new Option<string>("--tls-key") { Description = "The private key of --tls-cert (PEM, unencrypted)." };
        var tlsCa = new Option<string>("--tls-ca")
        {
            Description = "Certificate authorities (PEM): when given, every TLS client must present a certificate that chains to one of them.",
        };

        var ioBackend = new Option<string>("--io-backend")
        {
            Description = $"How the store file is read and written: {IoBackends.Names} (default: auto, which is io_uring where the kernel allows it, else threads).",
        };

        var command = new Command("serve", "Serve disks over NBD.")
        {
            config, store, takeover, exports, listens, socketMode, stdio, metrics, tls, tlsCert, tlsKey, tlsCa, verbose, logLevel, logFormat, ioBackend,
        };
        command.SetAction((parse, _) => RunAsync(new ServeFlags
        {
            Config = parse.GetValue(config),
            Store = parse.GetValue(store),
            Exports = parse.GetValue(exports) ?? [],
            Listen = parse.GetValue(listens) ?? [],
            SocketMode = parse.GetValue(socketMode),
            Stdio = parse.GetValue(stdio),
            Metrics = parse.GetValue(metrics),
            Verbose = parse.GetValue(verbose),
            LogLevel = parse.GetValue(logLevel),
            LogFormat = parse.GetValue(logFormat),
            Tls = parse.GetValue(tls),
            TlsCert = parse.GetValue(tlsCert),
            TlsKey = parse.GetValue(tlsKey),
            TlsCa = parse.GetValue(tlsCa),
            IoBackend = parse.GetValue(ioBackend),
        }, parse.GetValue(takeover)));
        return command;
    }

    /// <summary>
    /// Worker threads the pool starts without waiting (its default is one per core): what is
    /// left of blocking on pool threads (O_DIRECT reads, locks held across a large copy) then
    /// costs one tenant's request a thread, not every tenant's requests the pool's slow thread
    /// injection. Measured beside a neighbour writing ~800 MiB/s with flushes on 2 cores: a
    /// steady tenant's p99 write latency 6.4-8.2 ms with the default, 4.0 ms with 16. Measured
    /// again once socket continuations ran on the engine's threads (perf/RESULTS.md): without it,
    /// reads of upper data 0.85x, the rest within the noise; so it stays.
    /// </summary>
    private const int MinWorkerThreads = 16;

    private static async Task<int> RunAsync(ServeFlags flags, bool takeover)
    {
        string? completionsOnPool = SocketCompletions.PreferInline(); // before any socket: the runtime reads it once
        ThreadPool.GetMinThreads(out int workers, out int completionPorts);
        ThreadPool.SetMinThreads(Math.Max(workers, MinWorkerThreads), completionPorts);
        var config = HostConfig.LoadFrom(flags.Config);
        var settings = ServeSettings.Resolve(flags, config);
        using var loggers = HostLogging.Create(settings.LogLevel, settings.LogFormat);
        var logger = loggers.CreateLogger("blockoverlay");
        if (config is not null)
        {
            ConfigLog.Loaded(logger, config.FilePath);
        }

        if (completionsOnPool is not null)
        {
            HostLog.SocketCompletionsOnPool(logger, completionsOnPool);
        }

        if (StoreDevices.UseIoBackend(settings.IoBackend) is { } fallback)
        {
            HostLog.IoBackendFallback(logger, fallback);
        }

        using var host = ServeHost.Build(settings, loggers, takeover);
        try
        {
            await host.StartAsync();
        }
        catch
        {
            // What started is stopped, in reverse: the store, if it opened, closes cleanly.
            // Then the failure is told as every command's is (CommandErrors).
            await host.StopAsync();
            throw;
        }

        await host.WaitForShutdownAsync();
        return 0;
    }
}
