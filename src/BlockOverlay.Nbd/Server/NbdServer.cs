using System.Net;
using System.Net.Sockets;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Listeners;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Serves the exports of a catalog on any number of listening sockets and streams.
/// Each connection runs on its own; stopping the server stops accepting, lets every
/// connection finish the requests it started, and waits for them.
/// </summary>
/// <remarks>
/// Admission: a socket connection is counted against the server's limit and its client's
/// (<see cref="NbdServerOptions.MaxConnections"/>, <see cref="NbdServerOptions.MaxConnectionsPerClient"/>)
/// from accept to close; past either it is closed before the greeting. <c>_lock</c> guards the
/// listeners, the connections and those counts. Memory: each connection's budget sits inside its
/// client's, and every client's inside the server's one (<see cref="NbdServerOptions.MaxInFlightBytesInAll"/>).
/// </remarks>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly ExportCatalog _catalog;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _shutdown = new();
    private readonly List<Socket> _listeners = [];
    private readonly List<Task> _acceptLoops = [];
    private readonly Lock _lock = new();
    private readonly HashSet<Task> _connections = [];
    private readonly Dictionary<string, ClientShare> _perClient = [];
    private readonly LogThrottle _refusalLog;
    private readonly RequestBuffers _buffers;
    private readonly InFlightBudget _serverBudget;
    private int _admitted;
    private long _connectionIds;

    public NbdServer(ExportCatalog catalog, NbdServerOptions options, ILoggerFactory loggers)
    {
        _catalog = catalog;
        _options = options;
        _logger = loggers.CreateLogger("BlockOverlay.Nbd");
        _refusalLog = LogThrottle.ForRefusals(_logger);
        _buffers = new RequestBuffers(Counters);
        // Never below a client's budget: any one client's requests must fit.
        _serverBudget = new InFlightBudget(
            Math.Max(options.MaxInFlightBytesInAll, Math.Max(options.MaxInFlightBytesPerClient, options.MaxInFlightBytes)),
            waited: Counters.RecordMemoryWait);
    }

    /// <summary>What the server's connections have done so far (for <c>/metrics</c>).</summary>
    public ServerCounters Counters { get; } = new();

    /// <summary>Binds and starts accepting; returns the bound endpoint (a TCP port of 0 becomes a real one).</summary>
    public EndPoint Listen(ListenAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var socket = new Socket(address.EndPoint.AddressFamily, SocketType.Stream,
            address.EndPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp);
        try
        {
            // No ReuseAddress for TCP: on Linux .NET maps it to SO_REUSEPORT as well, which would let
            // a second server share the port silently instead of failing to bind. .NET already sets
            // SO_REUSEADDR itself, so a restart does not wait out TIME_WAIT.
            if (address.EndPoint is UnixDomainSocketEndPoint unix)
            {
                RemoveStaleUnixSocket(unix);
            }

            socket.Bind(address.EndPoint);
            if (address.EndPoint is UnixDomainSocketEndPoint bound && !OperatingSystem.IsWindows()) // Windows: no file modes
            {
                // The configured mode (owner and group by default), whatever the umask: connecting
                // needs write permission, and who else may connect is the operator's choice. Set
                // before listen(), so nobody connects while the mode is the umask's.
                File.SetUnixFileMode(bound.ToString(), _options.UnixSocketMode);
                if (_options.UnixSocketMode.HasFlag(UnixFileMode.OtherWrite))
                {
                    _logger.SocketOpenToEveryone(bound.ToString(), NbdServerOptions.Octal(_options.UnixSocketMode));
                }
            }

            // The longest queue the kernel allows (net.core.somaxconn): a host starting hundreds
            // of guests at once connects them together.
            socket.Listen();
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        Adopt(socket);
        return socket.LocalEndPoint!;
    }

    /// <summary>Accepts on a socket that is already listening (systemd socket activation).</summary>
    public void Adopt(Socket listening)
    {
        ArgumentNullException.ThrowIfNull(listening);
        _logger.Listening(listening.LocalEndPoint);
        lock (_lock)
        {
            _listeners.Add(listening);
            _acceptLoops.Add(AcceptLoopAsync(listening));
        }
    }

    /// <summary>Serves one connection over a pair of streams (stdio mode) until it ends; <paramref name="identity"/> is who is at the other end.</summary>
    public Task ServeStreamAsync(Stream input, Stream output, string peer, PeerIdentity identity) =>
        Track(input, output, peer, identity, owner: null, client: null, sharedBudget: _serverBudget);

    /// <summary>Stops accepting, lets connections finish what they started, and waits for them.</summary>
    public async Task StopAsync()
    {
        await _shutdown.CancelAsync();
        Task[] pending;
        lock (_lock)
        {
            _listeners.ForEach(l => l.Dispose());
            pending = [.. _acceptLoops, .. _connections];
        }

        await Task.WhenAll(pending);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _shutdown.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listening)
    {
        while (!_shutdown.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listening.AcceptAsync(_shutdown.Token);
            }
            catch (Exception) when (_shutdown.IsCancellationRequested)
            {
                return; // Stopping: StopAsync cancels, then closes the listener.
            }
            catch (SocketException e)
            {
                // Transient (EMFILE, ECONNABORTED): log, back off a little, keep serving.
                _logger.AcceptFailed(Describe(listening.LocalEndPoint), e.Message);
                await Task.Delay(100);
                continue;
            }

            string peer = Describe(client.RemoteEndPoint) ?? "unix";
            var identity = PeerCredentials.Of(client);
            string who = ClientOf(client, identity);
            var (clientBudget, refusal) = Admit(who);
            if (refusal is not null)
            {
                Counters.RecordConnectionRefused();
                if (_refusalLog.MayLog())
                {
                    _logger.ConnectionRefused(peer, refusal);
                }

                client.Dispose();
                continue;
            }

            if (client.ProtocolType == ProtocolType.Tcp)
            {
                client.NoDelay = true;
            }

            var stream = new NetworkStream(client, ownsSocket: true);
            _ = Track(stream, stream, peer, identity, owner: stream, client: who, clientBudget);
        }
    }

    /// <summary>
    /// Counts a new connection of <paramref name="client"/> and returns the budget its connections
    /// share, or says which limit refuses it.
    /// </summary>
    private (InFlightBudget? Budget, string? Refusal) Admit(string client)
    {
        lock (_lock)
        {
            if (_admitted >= _options.MaxConnections)
            {
                return (null, $"the server's limit of {_options.MaxConnections} connections is reached");
            }

            if (!_perClient.TryGetValue(client, out var share))
            {
                // Never below one connection's budget: any one request must fit.
                share = new ClientShare(new InFlightBudget(Math.Max(_options.MaxInFlightBytesPerClient, _options.MaxInFlightBytes), _serverBudget));
                _perClient.Add(client, share);
            }

            if (share.Connections >= _options.MaxConnectionsPerClient)
            {
                return (null, $"{client} already holds its limit of {_options.MaxConnectionsPerClient} connections");
            }

            share.Connections++;
            _admitted++;
            return (share.Budget, null);
        }
    }

    private void Release(string client)
    {
        lock (_lock)
        {
            _admitted--;
            if (--_perClient[client].Connections == 0)
            {
                _perClient.Remove(client);
            }
        }
    }

    /// <summary>Who a connection counts against: a TCP client's address, or a unix-socket peer's user id.</summary>
    private static string ClientOf(Socket socket, PeerIdentity identity) => socket.RemoteEndPoint is IPEndPoint ip
        ? $"address {ip.Address}"
        : identity.Uid is { } uid ? $"uid {uid}" : "an unidentified unix-socket peer";

    private Task Track(Stream input, Stream output, string peer, PeerIdentity identity, NetworkStream? owner, string? client,
        InFlightBudget? sharedBudget)
    {
        long id = Interlocked.Increment(ref _connectionIds);
        _logger.ConnectionOpened(id, peer);
        Counters.RecordConnectionOpened();
        var started = new TaskCompletionSource<Task>();
        var task = RunAsync();
        lock (_lock)
        {
            _connections.Add(task);
        }

        started.SetResult(task);
        return task;

        async Task RunAsync()
        {
            var self = await started.Task;
            try
            {
                await NbdConnection.RunAsync(input, output, identity, _catalog, _options, _logger, Counters, _buffers, sharedBudget, id, _shutdown.Token);
            }
            finally
            {
                Counters.RecordConnectionClosed();
                if (client is not null)
                {
                    Release(client);
                }

                if (owner is not null)
                {
                    await owner.DisposeAsync();
                }

                lock (_lock)
                {
                    _connections.Remove(self);
                }
            }
        }
    }

    private static void RemoveStaleUnixSocket(UnixDomainSocketEndPoint endPoint)
    {
        string path = endPoint.ToString();
        if (!File.Exists(path))
        {
            return;
        }

        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(endPoint);
        }
        catch (SocketException)
        {
            File.Delete(path); // Nobody answers: left behind by a server that died.
            return;
        }

        throw new IOException($"{path}: another server is already listening on this socket");
    }

    private static string? Describe(EndPoint? endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint unix => $"unix:{unix}",
        null => null,
        _ => endPoint.ToString(),
    };

    /// <summary>What one client's connections share: their count and their byte budget.</summary>
    private sealed class ClientShare(InFlightBudget budget)
    {
        public InFlightBudget Budget { get; } = budget;

        public int Connections { get; set; }
    }
}
