using BlockOverlay.Nbd.Protocol;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>Every event the NBD layer logs, in one place (source-generated, allocation-free when off).</summary>
internal static partial class NbdLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "listening on {EndPoint}")]
    public static partial void Listening(this ILogger logger, System.Net.EndPoint? endPoint);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "accept on {EndPoint} failed: {Reason}")]
    public static partial void AcceptFailed(this ILogger logger, string? endPoint, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "connection {Id} opened from {Peer}")]
    public static partial void ConnectionOpened(this ILogger logger, long id, string peer);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "connection {Id} {Outcome}")]
    public static partial void ConnectionClosed(this ILogger logger, long id, string outcome);

    [LoggerMessage(EventId = 104, Level = LogLevel.Information, Message = "connection {Id} attached to export '{Export}' (flags 0x{Flags:x}, structured replies {Structured})")]
    public static partial void Attached(this ILogger logger, long id, string export, ushort flags, bool structured);

    [LoggerMessage(EventId = 105, Level = LogLevel.Warning, Message = "connection {Id} dropped for a protocol violation: {Reason}")]
    public static partial void ProtocolViolation(this ILogger logger, long id, string reason);

    [LoggerMessage(EventId = 106, Level = LogLevel.Information, Message = "connection {Id} rejected option {Option}: {Reply}: {Reason}")]
    public static partial void OptionRejected(this ILogger logger, long id, NbdOption option, OptionReplyType reply, string reason);

    [LoggerMessage(EventId = 107, Level = LogLevel.Warning, Message = "connection {Id} rejected {Request}: {Error}: {Reason}")]
    public static partial void RequestRejected(this ILogger logger, long id, NbdRequest request, NbdError error, string reason);

    [LoggerMessage(EventId = 108, Level = LogLevel.Warning, Message = "connection {Id}: {Request} failed: {Error}: {Reason}")]
    public static partial void RequestFailed(this ILogger logger, long id, NbdRequest request, NbdError error, string reason);

    [LoggerMessage(EventId = 109, Level = LogLevel.Error, Message = "connection {Id}: {Request} failed unexpectedly")]
    public static partial void RequestCrashed(this ILogger logger, long id, NbdRequest request, Exception exception);

    [LoggerMessage(EventId = 110, Level = LogLevel.Error, Message = "connection {Id} failed with an internal error")]
    public static partial void ConnectionCrashed(this ILogger logger, long id, Exception exception);

    [LoggerMessage(EventId = 111, Level = LogLevel.Debug, Message = "connection {Id}: {Event}")]
    public static partial void ConnectionEvent(this ILogger logger, long id, string @event);

    [LoggerMessage(EventId = 112, Level = LogLevel.Warning, Message = "connection {Id}: writing back what the client left failed (kept for the next attempt): {Reason}")]
    public static partial void DetachFailed(this ILogger logger, long id, string reason);

    [LoggerMessage(EventId = 114, Level = LogLevel.Warning, Message = "connection {Id}: {Count} more rejected or failed requests or options not logged (one a second after the first ten)")]
    public static partial void LinesNotLogged(this ILogger logger, long id, long count);

    [LoggerMessage(EventId = 115, Level = LogLevel.Warning, Message = "connection from {Peer} refused: {Reason}")]
    public static partial void ConnectionRefused(this ILogger logger, string peer, string reason);

    [LoggerMessage(EventId = 116, Level = LogLevel.Warning, Message = "{Count} more refused connections not logged (one a second after the first ten)")]
    public static partial void RefusalsNotLogged(this ILogger logger, long count);

    [LoggerMessage(EventId = 117, Level = LogLevel.Information, Message = "connection {Id}: TLS started (client certificate: {Subject})")]
    public static partial void TlsStarted(this ILogger logger, long id, string subject);

    [LoggerMessage(EventId = 118, Level = LogLevel.Warning, Message = "unix socket {Path} is mode {Mode}: every local user may connect, and sees every export without access rules")]
    public static partial void SocketOpenToEveryone(this ILogger logger, string path, string mode);

    [LoggerMessage(EventId = 113, Level = LogLevel.Error, Message = "connection {Id}: writing back what the client left failed unexpectedly (kept for the next attempt)")]
    public static partial void DetachCrashed(this ILogger logger, long id, Exception exception);
}
