using System.Net;
using System.Net.Sockets;
using BlockOverlay.Exports;
using BlockOverlay.Host.Config;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// Where clients come in: the NBD server on its listeners (sockets inherited from systemd,
/// then the configured addresses), or on standard input and output (<c>--stdio</c>: one
/// client, then the server stops). Started last, so a client never finds an export before
/// its store is open; stopped first, letting every connection finish what it started.
/// </summary>
internal sealed class ListenerService(NbdServer server, ServeSettings settings, ExportCatalog catalog, SignalLifetime signals,
    IHostApplicationLifetime application, ILogger logger) : IHostedService
{
    private bool _listening;
    private Task _stdio = Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (settings.Stdio)
        {
            // Served once every service is up; signals from now on end the process as they
            // would any command (a signal that came before: nothing is served).
            application.ApplicationStarted.Register(() => _stdio = ServeStdioAsync());
            return Task.CompletedTask;
        }

        var activated = SystemdSockets.Take();
        foreach (var socket in activated)
        {
            server.Adopt(socket);
        }

        var bound = activated.Select(s => s.LocalEndPoint).OfType<EndPoint>().ToList();
        foreach (var address in settings.AddressesBeside(activated.Count))
        {
            bound.Add(server.Listen(address));
        }

        _listening = true;

        // The hints are for a person at a terminal; a log shipper wants nothing but JSON
        // lines on stderr (the listeners are logged as events either way).
        if (settings.LogFormat == LogFormat.Text)
        {
            Console.Error.Write(AttachHints.Describe(catalog.Snapshot.Select(e => e.Key), bound, settings.Tls.Mode == TlsChoice.Require));
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listening)
        {
            HostLog.Stopping(logger);
        }

        await server.DisposeAsync();
        await _stdio;
    }

    private async Task ServeStdioAsync()
    {
        try
        {
            if (!signals.Release())
            {
                var (input, output, peer) = StandardStreams();
                await server.ServeStreamAsync(input, output, "stdio", peer);
            }
        }
        finally
        {
            application.StopApplication();
        }
    }

    /// <summary>
    /// Standard input and output; but when standard input is a socket (inetd and its kind start
    /// a server on the accepted connection, with standard output left elsewhere), that socket
    /// both ways. libnbd's connect_command hands one socket as both, which works either way.
    /// The peer of a unix socket is known (its uid and groups); over a pipe it is anonymous, and
    /// instances with access rules are not offered.
    /// </summary>
    private static (Stream Input, Stream Output, PeerIdentity Peer) StandardStreams()
    {
        Socket socket;
        try
        {
            socket = new Socket(new SafeSocketHandle(0, ownsHandle: false));
        }
        catch (SocketException)
        {
            // Not a socket (ENOTSOCK): a pipe, a terminal or a file.
            return (Console.OpenStandardInput(), Console.OpenStandardOutput(), PeerIdentity.Anonymous);
        }

        var stream = new NetworkStream(socket, ownsSocket: true);
        return (stream, stream, PeerCredentials.Of(socket));
    }
}
