using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>Limits and advertised values of the NBD server.</summary>
public sealed record NbdServerOptions
{
    /// <summary>Block sizes advertised with NBD_INFO_BLOCK_SIZE; the maximum payload is enforced.</summary>
    public BlockSizes BlockSizes { get; init; } = BlockSizes.Default;

    /// <summary>
    /// Largest option data accepted during the handshake, in bytes. Names and queries are
    /// at most 4 KiB each, so 64 KiB leaves room for many queries while bounding memory.
    /// </summary>
    public int MaxOptionLength { get; init; } = 64 * 1024;

    /// <summary>
    /// Connections served at once (sockets; stdio is one by itself). Past it a new client is
    /// closed at once, before the greeting, and counted.
    /// </summary>
    public int MaxConnections { get; init; } = 4096;

    /// <summary>
    /// Connections one client may hold at once: a TCP client is its address, a unix-socket
    /// client its user id (from the kernel, SO_PEERCRED). Past it that client's new
    /// connection is closed at once, so one tenant cannot take every connection.
    /// </summary>
    public int MaxConnectionsPerClient { get; init; } = 1024;

    /// <summary>
    /// How long a client may take from connecting to choosing an export (qemu-nbd's
    /// <c>--handshake-limit</c> has the same default); then the connection is closed.
    /// </summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a WRITE's payload may go without a byte arriving once it has begun; then the
    /// connection is dropped and what it held is given back. Memory for a payload follows
    /// what has arrived, not the length the request claims.
    /// </summary>
    public TimeSpan PayloadStallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Request bytes one connection may hold at once (payloads being written, data being
    /// read, and replies until they are written to the socket), in bytes. Past it the
    /// connection stops reading until replies go out, so memory per connection is bounded
    /// whatever the client pipelines and whether or not it reads its replies.
    /// </summary>
    public long MaxInFlightBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// Request bytes all the connections of one client (as <see cref="MaxConnectionsPerClient"/>
    /// counts clients) may hold together, in bytes: at least <see cref="MaxInFlightBytes"/>.
    /// </summary>
    public long MaxInFlightBytesPerClient { get; init; } = 256L * 1024 * 1024;

    /// <summary>
    /// Cost charged per request on top of its data, in bytes, so that many tiny requests
    /// are bounded too (64 MiB / 4 KiB = 16384 requests in flight at most).
    /// </summary>
    public int RequestOverheadBytes { get; init; } = 4096;

    /// <summary>TLS offered or required through NBD_OPT_STARTTLS; null: none (STARTTLS is answered ERR_UNSUP).</summary>
    public NbdTls? Tls { get; init; }

    /// <summary>Most descriptors in one BLOCK_STATUS reply chunk.</summary>
    public int MaxBlockStatusDescriptors { get; init; } = 1024;
}
