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
    /// How long a connection attached to an export may send nothing while nothing of it is in
    /// flight (no request running, no reply unwritten); then it is closed and counted. Null (the
    /// default): no limit, since an idle connection is normal (a kernel NBD device with no I/O
    /// sends nothing, for hours) and costs only its socket, which the connection limits bound.
    /// </summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>
    /// How long the client may leave a batch of replies untaken (the socket accepting none of
    /// it) before the connection is dropped and what its replies held given back; also the
    /// grace before <see cref="MinTransferRate"/> applies to a batch.
    /// </summary>
    public TimeSpan ReplyStallTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The slowest a WRITE's payload may arrive and a batch of replies be taken, in bytes per
    /// second, after the stall limit's grace: a payload of N bytes must be whole within
    /// <see cref="PayloadStallTimeout"/> + N / rate of its first byte, a batch of replies written
    /// within <see cref="ReplyStallTimeout"/> + its bytes / rate. So everything a client holds of
    /// the budgets is given back within a bounded time, however slowly it trickles, and a
    /// request waiting for the server's budget is served in bounded time (DESIGN.md, invariant 7).
    /// </summary>
    public long MinTransferRate { get; init; } = 256 * 1024;

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
    /// Request bytes all the connections of the server may hold together, in bytes: at least
    /// <see cref="MaxInFlightBytesPerClient"/>. Past it a connection stops reading until others
    /// give room back (it waits in line; it is never refused), so the server's request memory is
    /// bounded whatever the number of clients. 1 GiB: four clients at their full budget, and a
    /// fixed figure rather than a share of RAM, so a server behaves the same on every host.
    /// </summary>
    public long MaxInFlightBytesInAll { get; init; } = 1L << 30;

    /// <summary>
    /// Cost charged per request on top of its data, in bytes, so that many tiny requests
    /// are bounded too (64 MiB / 4 KiB = 16384 requests in flight at most).
    /// </summary>
    public int RequestOverheadBytes { get; init; } = 4096;

    /// <summary>
    /// The mode of unix sockets the server creates, whatever the umask: rw for the owner and
    /// the group (0660) by default. Connecting needs write permission, so a mode with o+w lets
    /// every local user connect (and see every instance without access rules); it is allowed,
    /// since per-user access rules need it, and logged as a warning.
    /// </summary>
    public UnixFileMode UnixSocketMode { get; init; } = DefaultUnixSocketMode;

    public const UnixFileMode DefaultUnixSocketMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    /// <summary>
    /// A socket mode in octal (<c>0660</c>, <c>660</c>): read and write bits only, and the owner
    /// must have both (a socket its own server's user cannot use is a mistake).
    /// </summary>
    public static UnixFileMode ParseSocketMode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const int ReadWriteBits = 0x1B6; // 0666
        const int OwnerReadWrite = 0x180; // 0600
        int mode = 0;
        bool octal = text.Length is > 0 and <= 4 && text.All(c => c is >= '0' and <= '7');
        if (octal)
        {
            mode = text.Aggregate(0, (m, c) => (m * 8) + (c - '0'));
        }

        return !octal ? throw new FormatException($"'{text}' is not a mode in octal, like 0660")
            : (mode & ~ReadWriteBits) != 0 ? throw new FormatException($"{text}: a socket takes only read and write bits (at most 0666)")
            : (mode & OwnerReadWrite) != OwnerReadWrite ? throw new FormatException($"{text}: the owner needs read and write (06..)")
            : (UnixFileMode)mode;
    }

    /// <summary>A mode as the operator writes it: <c>0660</c>.</summary>
    public static string Octal(UnixFileMode mode) => "0" + Convert.ToString((int)mode, 8);

    /// <summary>TLS offered or required through NBD_OPT_STARTTLS; null: none (STARTTLS is answered ERR_UNSUP).</summary>
    public NbdTls? Tls { get; init; }

    /// <summary>Most descriptors in one BLOCK_STATUS reply chunk.</summary>
    public int MaxBlockStatusDescriptors { get; init; } = 1024;
}
