// Constants from libnbd.h as .NET types. Values are libnbd's, not the NBD wire's: libnbd
// translates them (e.g. LIBNBD_CMD_FLAG_* happen to equal NBD_CMD_FLAG_* today).

namespace BlockOverlay.LibNbd;

/// <summary>LIBNBD_CMD_FLAG_*: flags on a single command.</summary>
[Flags]
public enum CommandFlags : uint
{
    None = 0,
    Fua = 0x01,
    NoHole = 0x02,
    Df = 0x04,
    ReqOne = 0x08,
    FastZero = 0x10,
}

/// <summary>LIBNBD_STRICT_*: which malformed requests libnbd refuses on the client side.
/// Clear bits to let such requests reach the server (robustness tests). libnbd 1.14 has
/// exactly these five; later versions add more, so relax bits starting from
/// <see cref="NbdClient.GetStrictMode"/> rather than from a constant.</summary>
[Flags]
public enum StrictMode : uint
{
    None = 0,
    Commands = 0x01,
    Flags = 0x02,
    Bounds = 0x04,
    ZeroSize = 0x08,
    Align = 0x10,
}

/// <summary>LIBNBD_HANDSHAKE_FLAG_*: the newstyle handshake flags the client accepts.</summary>
[Flags]
public enum HandshakeFlags : uint
{
    None = 0,
    FixedNewstyle = 0x01,
    NoZeroes = 0x02,
}

/// <summary>LIBNBD_SHUTDOWN_*: for <see cref="NbdClient.Shutdown"/>.</summary>
[Flags]
public enum ShutdownFlags : uint
{
    None = 0,

    /// <summary>Drop commands libnbd has queued but not yet sent, instead of sending them
    /// before NBD_CMD_DISC.</summary>
    AbandonPending = 0x10000,
}

/// <summary>LIBNBD_SIZE_*: which block size constraint to ask for.</summary>
public enum BlockSizeConstraint
{
    Minimum = 0,
    Preferred = 1,
    Maximum = 2,
}

/// <summary>LIBNBD_READ_*: what one chunk of a structured read carried.</summary>
public enum ReadChunkStatus : uint
{
    Data = 1,
    Hole = 2,
    Error = 3,
}

/// <summary>LIBNBD_STATE_*: extent flags of the "base:allocation" meta context.</summary>
[Flags]
public enum AllocationState : uint
{
    Data = 0,
    Hole = 0x01,
    Zero = 0x02,
}
