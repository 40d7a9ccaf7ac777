using System.Net.Sockets;
using System.Text.Json;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host;

/// <summary>
/// The one rule for what a failure of a command, a control request or <c>serve</c>'s start
/// means to the operator: the message they are told, or null when it is a bug. The list is
/// closed: the system refused (files, devices, sockets, permissions), input did not parse
/// (flags, a config, a peer's message), or the store, an instance, a base or an export name
/// refused the request. Everything else — an argument or state exception, a null
/// dereference, a disposed object — is a bug, and goes out with its stack trace
/// (<see cref="CommandErrors"/> for the CLI, the server's log for the control socket),
/// never as a one-line error that looks like bad input.
/// </summary>
/// <remarks>
/// A user's input that code further down would only meet as an <see cref="ArgumentException"/>
/// is checked and refused with one of these types before it gets there; an
/// <see cref="ArgumentException"/> that does arrive means a caller broke a contract.
/// </remarks>
internal static class OperatorFailures
{
    public static string? MessageFor(Exception failure) => failure switch
    {
        IOException or UnauthorizedAccessException or SocketException => failure.Message,
        FormatException or JsonException => failure.Message,
        StoreFormatException or InstanceException or BaseImageChangedException => failure.Message,
        ExportException or ExportNameTakenException => failure.Message,
        _ => null,
    };
}
