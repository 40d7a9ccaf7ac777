namespace BlockOverlay.Nbd.Protocol;

/// <summary>
/// The NBD wire format in one place: every magic, code and flag this server speaks,
/// with the layout of each message. All integers are big-endian (network order).
/// Reference: doc/proto.md in the NetworkBlockDevice/nbd repository.
/// </summary>
/// <remarks>
/// <code>
/// Greeting (server, fixed newstyle)
/// +----------------------+----------------------+------------+
/// | NBDMAGIC        u64  | IHAVEOPT        u64  | flags  u16 |
/// +----------------------+----------------------+------------+
/// Client flags: u32.
///
/// Option request (client)
/// +----------------------+------------+------------+--------------+
/// | IHAVEOPT        u64  | option u32 | length u32 | data[length] |
/// +----------------------+------------+------------+--------------+
///
/// Option reply (server)
/// +----------------------+------------+------------+------------+--------------+
/// | OptionReplyMagic u64 | option u32 | type   u32 | length u32 | data[length] |
/// +----------------------+------------+------------+------------+--------------+
///
/// Request (client), 28 bytes, followed by the payload of a WRITE
/// +-----------+-----------+----------+-------------+-------------+------------+
/// | magic u32 | flags u16 | type u16 | cookie u64  | offset u64  | length u32 |
/// +-----------+-----------+----------+-------------+-------------+------------+
///
/// Simple reply (server), 16 bytes, followed by the data of a successful READ
/// +-----------+-----------+-------------+
/// | magic u32 | error u32 | cookie u64  |
/// +-----------+-----------+-------------+
///
/// Structured reply chunk (server), 20 bytes, followed by the payload
/// +-----------+-----------+----------+-------------+------------+
/// | magic u32 | flags u16 | type u16 | cookie u64  | length u32 |
/// +-----------+-----------+----------+-------------+------------+
/// </code>
/// </remarks>
public static class NbdWire
{
    public const ulong InitMagic = 0x4e42444d41474943;        // "NBDMAGIC"
    public const ulong OptionMagic = 0x49484156454F5054;      // "IHAVEOPT"
    public const ulong OptionReplyMagic = 0x0003e889045565a9;
    public const uint RequestMagic = 0x25609513;
    public const uint SimpleReplyMagic = 0x67446698;
    public const uint StructuredReplyMagic = 0x668e33ef;

    public const int OptionHeaderSize = 16;
    public const int OptionReplyHeaderSize = 20;
    public const int RequestHeaderSize = 28;
    public const int SimpleReplyHeaderSize = 16;
    public const int StructuredReplyHeaderSize = 20;

    /// <summary>"Strings ... MUST be no longer than 4096 bytes" (export names, messages, queries).</summary>
    public const int MaxStringLength = 4096;

    /// <summary>Reserved bytes after NBD_OPT_EXPORT_NAME's reply unless NO_ZEROES was agreed.</summary>
    public const int ExportNameReplyZeroes = 124;
}

/// <summary>Handshake flags (server, u16).</summary>
[Flags]
public enum HandshakeFlags : ushort
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>Client flags (u32). Anything else set means: drop the connection.</summary>
[Flags]
public enum ClientFlags : uint
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>Option codes (u32).</summary>
public enum NbdOption : uint
{
    ExportName = 1,
    Abort = 2,
    List = 3,
    StartTls = 5,
    Info = 6,
    Go = 7,
    StructuredReply = 8,
    ListMetaContext = 9,
    SetMetaContext = 10,
    ExtendedHeaders = 11,
}

/// <summary>Option reply types (u32); errors have bit 31 set.</summary>
public enum OptionReplyType : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrUnsupported = 0x80000000 | 1,
    ErrPolicy = 0x80000000 | 2,
    ErrInvalid = 0x80000000 | 3,
    ErrPlatform = 0x80000000 | 4,
    ErrTlsRequired = 0x80000000 | 5,
    ErrUnknown = 0x80000000 | 6,
    ErrShutdown = 0x80000000 | 7,
    ErrBlockSizeRequired = 0x80000000 | 8,
    ErrTooBig = 0x80000000 | 9,
}

/// <summary>Information types of NBD_OPT_INFO / NBD_OPT_GO (u16).</summary>
public enum InfoType : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}

/// <summary>Transmission flags (u16), advertised per export.</summary>
[Flags]
public enum TransmissionFlags : ushort
{
    None = 0,
    HasFlags = 1 << 0,
    ReadOnly = 1 << 1,
    SendFlush = 1 << 2,
    SendFua = 1 << 3,
    Rotational = 1 << 4,
    SendTrim = 1 << 5,
    SendWriteZeroes = 1 << 6,
    SendDf = 1 << 7,
    CanMultiConn = 1 << 8,
    SendResize = 1 << 9,
    SendCache = 1 << 10,
    SendFastZero = 1 << 11,
}

/// <summary>Request types (u16).</summary>
public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
}

/// <summary>Command flags (u16).</summary>
[Flags]
public enum CommandFlags : ushort
{
    None = 0,
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    RequestOne = 1 << 3,
    FastZero = 1 << 4,
}

/// <summary>Structured reply chunk types (u16); errors have bit 15 set.</summary>
public enum ReplyChunkType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = 0x8000 | 1,
    ErrorOffset = 0x8000 | 2,
}

/// <summary>Structured reply flags (u16).</summary>
[Flags]
public enum ReplyFlags : ushort
{
    None = 0,
    Done = 1 << 0,
}

/// <summary>Error values allowed on the wire (u32), with the errno they are named after.</summary>
public enum NbdError : uint
{
    None = 0,
    NotPermitted = 1,     // EPERM
    IoError = 5,          // EIO
    OutOfMemory = 12,     // ENOMEM
    InvalidArgument = 22, // EINVAL
    NoSpace = 28,         // ENOSPC
    Overflow = 75,        // EOVERFLOW
    NotSupported = 95,    // ENOTSUP
    ShuttingDown = 108,   // ESHUTDOWN
}

/// <summary>Flags of a <c>base:allocation</c> block status descriptor (u32).</summary>
[Flags]
public enum AllocationFlags : uint
{
    None = 0,
    Hole = 1 << 0,
    Zero = 1 << 1,
}
