using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>An in-process server on a unix socket in a fresh directory, with its log captured.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("blockoverlay-nbd-").FullName;
    private readonly NbdServer _server;

    public TestServer(params (string Name, IExport Export)[] exports)
        : this(new NbdServerOptions(), exports)
    {
    }

    public TestServer(NbdServerOptions options, params (string Name, IExport Export)[] exports)
    {
        foreach (var (name, export) in exports)
        {
            Catalog.Add(name, export);
        }

        SocketPath = Path.Combine(_directory, "nbd.sock");
        _server = new NbdServer(Catalog, options, new CapturingLoggerFactory(Log));
        _server.Listen(ListenAddress.Parse("unix:" + SocketPath));
    }

    public ExportCatalog Catalog { get; } = new();

    public ServerCounters Counters => _server.Counters;

    public string SocketPath { get; }

    /// <summary>Every line the server logged.</summary>
    public ConcurrentQueue<string> Log { get; } = new();

    public string Uri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    /// <summary>Listens on TCP too (127.0.0.1, a free port), where each client address is a client of its own.</summary>
    public int ListenTcp() => ((IPEndPoint)_server.Listen(ListenAddress.Parse("tcp:127.0.0.1:0"))).Port;

    /// <summary>A TCP client from <paramref name="from"/> (any of 127.0.0.0/8, all on the loopback device) to <see cref="ListenTcp"/>'s port.</summary>
    public static async Task<RawNbdClient> ConnectTcpAsync(int port, IPAddress from)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(from, 0));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return new RawNbdClient(socket);
    }

    public async Task<RawNbdClient> ConnectRawAsync()
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath));
        return new RawNbdClient(socket);
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        foreach (var (_, export) in Catalog.Snapshot)
        {
            await export.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private sealed class CapturingLoggerFactory(ConcurrentQueue<string> lines) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new CapturingLogger(lines);

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    private sealed class CapturingLogger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lines.Enqueue($"{logLevel}: {formatter(state, exception)}{(exception is null ? "" : " " + exception)}");
        }
    }
}
