using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// What one <see cref="NbdServer"/> has done since it started: connections, requests by
/// command, error replies by code, bytes moved. Its connections write it; anything (the
/// <c>/metrics</c> page) may read it at any time.
/// </summary>
/// <remarks>
/// Every request passes through here, so recording costs one interlocked add on a slot of
/// a fixed array indexed by the enum value: no lock, no allocation. Reads are not a
/// consistent snapshot across counters (a scrape may see a request counted and its error
/// not yet), which monitoring tolerates.
/// </remarks>
public sealed class ServerCounters
{
    private static readonly int CommandSlots = (int)Enum.GetValues<NbdCommand>().Max() + 1;
    // Indexed by the errno itself: ~100 slots cost less than mapping each code to a dense index.
    private static readonly int ErrorSlots = (int)Enum.GetValues<NbdError>().Max() + 1;

    private readonly long[] _requests = new long[CommandSlots];
    private readonly long[] _errors = new long[ErrorSlots];
    private long _connectionsOpened;
    private long _connectionsOpen;
    private long _handshakeTimeouts;
    private long _idleTimeouts;
    private long _stalls;
    private long _memoryWaits;
    private long _connectionsRefused;
    private long _requestBufferBytes;
    private long _rejected;
    private long _failed;
    private long _bytesRead;
    private long _bytesWritten;

    /// <summary>Connections accepted (sockets and stdio) since the server started.</summary>
    public long ConnectionsOpened => Volatile.Read(ref _connectionsOpened);

    /// <summary>Connections open now, from accept to close (negotiating ones included).</summary>
    public long ConnectionsOpen => Volatile.Read(ref _connectionsOpen);

    /// <summary>
    /// Bytes held now for requests: WRITE payloads from their first byte received until written,
    /// READ data until its reply is sent. Returns to 0 when nothing is in flight.
    /// </summary>
    public long RequestBufferBytes => Volatile.Read(ref _requestBufferBytes);

    /// <summary>Connections closed at once for a connection limit (the server's or the client's).</summary>
    public long ConnectionsRefused => Volatile.Read(ref _connectionsRefused);

    /// <summary>Connections closed because they did not choose an export within the handshake limit.</summary>
    public long HandshakeTimeouts => Volatile.Read(ref _handshakeTimeouts);

    /// <summary>Connections closed because they sent nothing, with nothing in flight, for the idle limit.</summary>
    public long IdleTimeouts => Volatile.Read(ref _idleTimeouts);

    /// <summary>Connections dropped because a WRITE payload or their replies stopped moving (or moved slower than the floor).</summary>
    public long Stalls => Volatile.Read(ref _stalls);

    /// <summary>Requests that waited for room in the server's budget (all connections together held it).</summary>
    public long MemoryWaits => Volatile.Read(ref _memoryWaits);

    /// <summary>Requests refused before any I/O (range, flags, read-only, unknown command).</summary>
    public long RejectedRequests => Volatile.Read(ref _rejected);

    /// <summary>Requests the export failed (its errors, I/O errors, internal errors).</summary>
    public long FailedRequests => Volatile.Read(ref _failed);

    /// <summary>Data of the READs the export served.</summary>
    public long BytesRead => Volatile.Read(ref _bytesRead);

    /// <summary>Data of the WRITEs the export accepted (refused or failed writes are not counted).</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    /// <summary>Requests received with this command, refused ones included; DISC too.</summary>
    public long RequestsOf(NbdCommand command) =>
        (uint)command < (uint)_requests.Length ? Volatile.Read(ref _requests[(int)command]) : 0;

    /// <summary>Error replies sent with this error code, whether rejected or failed.</summary>
    public long ErrorsOf(NbdError error) =>
        (uint)error < (uint)_errors.Length ? Volatile.Read(ref _errors[(int)error]) : 0;

    public void RecordConnectionOpened()
    {
        Interlocked.Increment(ref _connectionsOpened);
        Interlocked.Increment(ref _connectionsOpen);
    }

    public void RecordConnectionClosed() => Interlocked.Decrement(ref _connectionsOpen);

    public void AddRequestBufferBytes(long bytes) => Interlocked.Add(ref _requestBufferBytes, bytes);

    public void RecordConnectionRefused() => Interlocked.Increment(ref _connectionsRefused);

    public void RecordHandshakeTimeout() => Interlocked.Increment(ref _handshakeTimeouts);

    public void RecordIdleTimeout() => Interlocked.Increment(ref _idleTimeouts);

    public void RecordStall() => Interlocked.Increment(ref _stalls);

    public void RecordMemoryWait() => Interlocked.Increment(ref _memoryWaits);

    /// <summary>
    /// Counts a request as it comes off the wire. A command outside the enum has no slot:
    /// it is refused, so it still shows in <see cref="RejectedRequests"/> and the EINVAL count.
    /// </summary>
    public void RecordRequest(NbdCommand command)
    {
        if ((uint)command < (uint)_requests.Length)
        {
            Interlocked.Increment(ref _requests[(int)command]);
        }
    }

    public void RecordRejected(NbdError error)
    {
        Interlocked.Increment(ref _rejected);
        RecordError(error);
    }

    public void RecordFailed(NbdError error)
    {
        Interlocked.Increment(ref _failed);
        RecordError(error);
    }

    public void RecordRead(long bytes) => Interlocked.Add(ref _bytesRead, bytes);

    public void RecordWritten(long bytes) => Interlocked.Add(ref _bytesWritten, bytes);

    // Bounds-checked rather than trusted: this runs in a request's error path, where a throw
    // would leave the request without a reply.
    private void RecordError(NbdError error)
    {
        if ((uint)error < (uint)_errors.Length)
        {
            Interlocked.Increment(ref _errors[(int)error]);
        }
    }
}
