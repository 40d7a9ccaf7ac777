using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// The NBD server's families, copied from its <see cref="ServerCounters"/> at the start of each scrape.
/// Every command and error code gets its series even at 0, so dashboards find it from the start.
/// </summary>
internal sealed class NbdFamilies
{
    private readonly ServerCounters _server;
    private readonly Counter _connections;
    private readonly Gauge _connectionsOpen;
    private readonly Counter _handshakeTimeouts;
    private readonly Counter _idleTimeouts;
    private readonly Counter _stalls;
    private readonly Counter _memoryWaits;
    private readonly Counter _connectionsRefused;
    private readonly Gauge _requestBuffers;
    private readonly Counter _requests;
    private readonly Counter _errors;
    private readonly Counter _rejected;
    private readonly Counter _failed;
    private readonly Counter _read;
    private readonly Counter _written;

    public NbdFamilies(ServerCounters server, IMetricFactory factory)
    {
        _server = server;
        _connections = factory.CreateCounter("blockoverlay_connections_total", "Client connections accepted (sockets and stdio).");
        _connectionsOpen = factory.CreateGauge("blockoverlay_connections_open", "Client connections open now, negotiating ones included.");
        _handshakeTimeouts = factory.CreateCounter("blockoverlay_handshake_timeouts_total",
            "Connections closed for not choosing an export within the handshake limit.");
        _idleTimeouts = factory.CreateCounter("blockoverlay_idle_timeouts_total",
            "Connections closed for sending nothing, with nothing in flight, for the idle limit.");
        _stalls = factory.CreateCounter("blockoverlay_stalled_connections_total",
            "Connections dropped because a WRITE payload or their replies stopped moving, or moved slower than the minimum rate.");
        _memoryWaits = factory.CreateCounter("blockoverlay_server_memory_waits_total",
            "Requests that waited for room in the server-wide request budget (limits.serverMemory).");
        _connectionsRefused = factory.CreateCounter("blockoverlay_connections_refused_total",
            "Connections closed at once for a connection limit (the server's or the client's).");
        _requestBuffers = factory.CreateGauge("blockoverlay_request_buffer_bytes",
            "Bytes held now for requests: WRITE payloads being received or written, READ data until sent.");
        _requests = factory.CreateCounter("blockoverlay_requests_total", "Requests received, by command; refused ones included.", ["command"]);
        _errors = factory.CreateCounter("blockoverlay_request_errors_total", "Error replies sent, by NBD error code.", ["error"]);
        _rejected = factory.CreateCounter("blockoverlay_requests_rejected_total",
            "Requests refused before any I/O: bad range, flags or command, or a write to a read-only export.");
        _failed = factory.CreateCounter("blockoverlay_requests_failed_total", "Requests the export failed (no space, I/O error, ...).");
        _read = factory.CreateCounter("blockoverlay_read_bytes_total", "Bytes clients read: the data of successful READs.");
        _written = factory.CreateCounter("blockoverlay_written_bytes_total", "Bytes clients wrote: the data of successful WRITEs.");
    }

    /// <summary>Copies the live counters into the families, at the start of a scrape.</summary>
    public void Update()
    {
        _connections.IncTo(_server.ConnectionsOpened);
        _connectionsOpen.Set(_server.ConnectionsOpen);
        _handshakeTimeouts.IncTo(_server.HandshakeTimeouts);
        _idleTimeouts.IncTo(_server.IdleTimeouts);
        _stalls.IncTo(_server.Stalls);
        _memoryWaits.IncTo(_server.MemoryWaits);
        _connectionsRefused.IncTo(_server.ConnectionsRefused);
        _requestBuffers.Set(_server.RequestBufferBytes);
        foreach (var command in Enum.GetValues<NbdCommand>())
        {
            _requests.WithLabels(CommandLabel(command)).IncTo(_server.RequestsOf(command));
        }

        foreach (var error in Enum.GetValues<NbdError>().Where(e => e != NbdError.None))
        {
            _errors.WithLabels(ErrorLabel(error)).IncTo(_server.ErrorsOf(error));
        }

        _rejected.IncTo(_server.RejectedRequests);
        _failed.IncTo(_server.FailedRequests);
        _read.IncTo(_server.BytesRead);
        _written.IncTo(_server.BytesWritten);
    }

    private static string CommandLabel(NbdCommand command) => command switch
    {
        NbdCommand.Read => "read",
        NbdCommand.Write => "write",
        NbdCommand.Disconnect => "disc",
        NbdCommand.Flush => "flush",
        NbdCommand.Trim => "trim",
        NbdCommand.Cache => "cache",
        NbdCommand.WriteZeroes => "write_zeroes",
        NbdCommand.BlockStatus => "block_status",
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "no metric label for this command"),
    };

    /// <summary>The errno names the NBD protocol uses for its error codes.</summary>
    private static string ErrorLabel(NbdError error) => error switch
    {
        NbdError.NotPermitted => "EPERM",
        NbdError.IoError => "EIO",
        NbdError.OutOfMemory => "ENOMEM",
        NbdError.InvalidArgument => "EINVAL",
        NbdError.NoSpace => "ENOSPC",
        NbdError.Overflow => "EOVERFLOW",
        NbdError.NotSupported => "ENOTSUP",
        NbdError.ShuttingDown => "ESHUTDOWN",
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "no metric label for this error"),
    };
}
