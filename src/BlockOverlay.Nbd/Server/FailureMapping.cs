using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// What the NBD layer makes of a failure: the wire error a client is told, and whether a
/// failed transport means the peer is gone.
/// </summary>
/// <remarks>
/// A bug (<see cref="ExportFailures.Classify"/> says null) in a request is logged at Error
/// with its stack trace and counted, and the client gets EIO for that request; the
/// connection stays. The request's own outcome is unknown, but the others in flight are
/// independent and already started, so ending the connection would not undo anything and
/// would turn one bug into a disconnect for every request. A bug outside a request (sending
/// replies, the session itself) ends the connection, logged the same way.
/// </remarks>
internal static class FailureMapping
{
    /// <summary>The one mapping from an export's reason to the wire error; it names every member.</summary>
    public static NbdError WireErrorOf(ExportError error)
    {
        // No default arm: a new ExportError member does not compile until it is mapped here.
#pragma warning disable CS8524 // Values outside the named members cannot be built from ExportFailures.
        return error switch
        {
            ExportError.IoError => NbdError.IoError,
            ExportError.NoSpace => NbdError.NoSpace,
            ExportError.InvalidArgument => NbdError.InvalidArgument,
            ExportError.NotSupported => NbdError.NotSupported,
            ExportError.ReadOnly => NbdError.NotPermitted,
        };
#pragma warning restore CS8524
    }

    /// <summary>
    /// The connection's transport failed because the peer hung up or the server closed it:
    /// an ending, not a bug.
    /// </summary>
    public static bool IsPeerGone(Exception e) => e is IOException or ObjectDisposedException;
}
