using System.CommandLine;
using System.Runtime.InteropServices;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
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
/// of a store (<c>--store</c>) under its own name, and plain exports (<c>--export</c>). With
/// no arguments it serves a 1 GiB memory disk named "demo" on 127.0.0.1:10809, so a first
/// run works out of the box.
/// </summary>
internal static class ServeCommand
{
    private const string DefaultExport = "demo=memory:1G";

    public static Command Create()
    {
        var exports = new Option<string[]>("--export")
        {
            Description = "An export, as NAME=memory:SIZE or NAME=file:PATH[:ro]. Repeatable. Default: " + DefaultExport,
            Arity = ArgumentArity.ZeroOrMore,
        };
        var listens = new Option<string[]>("--listen")
        {
            Description = $"Where to listen: tcp:HOST:PORT or unix:PATH. Repeatable. Default: tcp:127.0.0.1:{ListenAddress.DefaultPort} " +
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
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Log debug events too." };

        var command = new Command("serve", "Serve disks over NBD.") { store, exports, listens, stdio, metrics, verbose };
        command.SetAction((parse, _) => RunAsync(
            parse.GetValue(store),
            parse.GetValue(exports) ?? [],
            parse.GetValue(listens) ?? [],
            parse.GetValue(stdio),
            parse.GetValue(metrics),
            parse.GetValue(verbose)));
        return command;
    }

    private static async Task<int> RunAsync(string? storePath, string[] exportSpecs, string[] listenSpecs, bool stdio, string? metricsSpec, bool verbose)
    {
        using var loggers = HostLogging.Create(verbose ? LogLevel.Debug : LogLevel.Information);
        var logger = loggers.CreateLogger("blockoverlay");
        List<ExportSpec> specs;
        List<ListenAddress> addresses;
        System.Net.IPEndPoint? metricsAddress;
        try
        {
            metricsAddress = metricsSpec is null ? null : MetricsEndpoint.ParseAddress(metricsSpec);
            string[] defaults = storePath is null ? [DefaultExport] : [];
            specs = (exportSpecs.Length > 0 ? exportSpecs : defaults).Select(ExportSpec.Parse).ToList();
            addresses = listenSpecs.Select(ListenAddress.Parse).ToList();
            if (stdio && addresses.Count > 0)
            {
                throw new FormatException("--stdio serves standard input and output; it cannot be combined with --listen");
            }
        }
        catch (FormatException e)
        {
            return Fail(e.Message);
        }

        var catalog = new ExportCatalog();
        var opened = new List<IExport>();
        StoreHost? host = null;
        ControlServer? control = null;
        try
        {
            if (storePath is not null)
            {
                host = await StoreHost.OpenAsync(storePath, new CacheOptions(), catalog, logger);
                control = StartControl(storePath, host, logger);
            }

            foreach (var spec in specs)
            {
                var export = OpenExport(spec);
                opened.Add(export);
                catalog.Add(spec.Name, export);
            }

            await using var server = new NbdServer(catalog, new NbdServerOptions(), loggers);
            await using var metricsEndpoint = metricsAddress is null ? null : new MetricsEndpoint(metricsAddress, () => ServerMetrics.Render(host?.Cache));
            if (metricsEndpoint is not null)
            {
                var scrapedAt = metricsEndpoint.Start();
                HostLog.MetricsServed(logger, scrapedAt);
            }

            if (stdio)
            {
                await server.ServeStreamAsync(Console.OpenStandardInput(), Console.OpenStandardOutput(), "stdio");
                return 0;
            }

            var activated = SystemdSockets.Take();
            foreach (var socket in activated)
            {
                server.Adopt(socket);
            }

            if (activated.Count == 0 && addresses.Count == 0)
            {
                addresses.Add(ListenAddress.Parse($"tcp:127.0.0.1:{ListenAddress.DefaultPort}"));
            }

            var bound = activated.Select(s => s.LocalEndPoint).OfType<System.Net.EndPoint>().ToList();
            foreach (var address in addresses)
            {
                bound.Add(server.Listen(address));
            }

            Console.Error.Write(AttachHints.Describe(catalog.Snapshot.Select(e => e.Key), bound));

            await WaitForStopSignalAsync(logger);
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

    /// <summary>Waits for SIGTERM or SIGINT; a second signal exits at once.</summary>
    private static async Task WaitForStopSignalAsync(ILogger logger)
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true;
            if (!stop.TrySetResult())
            {
                Environment.Exit(130);
            }
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        await stop.Task;
        HostLog.Stopping(logger);
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"blockoverlay serve: {message}");
        return 1;
    }
}
