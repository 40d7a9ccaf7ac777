using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace BlockOverlay.Host.Live;

/// <summary>
/// The CLI's side of the control socket: sends an instance command to the server holding
/// the store, if one answers. The caller then need not care whether a server runs.
/// </summary>
internal static class ControlClient
{
    /// <summary>
    /// The server's answer, or null when no server holds the store (no socket, or a stale one).
    /// Progress reports of long commands go to <paramref name="progress"/> as they arrive.
    /// Blocking calls on purpose: the CLI is one process per command, and a blocking socket
    /// needs no event thread and no pool threads to start (each new thread's stack costs page
    /// faults that a command waits for; perf/RESULTS.md, "Notes on scale").
    /// </summary>
    public static InstanceResponse? TrySend(string storePath, InstanceRequest request, Action<ProgressReport>? progress = null)
    {
        string path = ControlServer.PathFor(storePath);
        if (!File.Exists(path))
        {
            return null;
        }

        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            return null; // left behind by a server that died: work offline (the store's lock is the real guard)
        }

        using var stream = new NetworkStream(socket, ownsSocket: false);
        stream.Write(JsonSerializer.SerializeToUtf8Bytes(request, ControlJson.Default.InstanceRequest));
        stream.Write("\n"u8);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (reader.ReadLine() is { } line)
        {
            switch (JsonSerializer.Deserialize(line, ControlJson.Default.ControlReply))
            {
                case ProgressReport report:
                    progress?.Invoke(report);
                    break;
                case InstanceResponse response:
                    return response;
                default:
                    throw new IOException($"the server at {path} sent an empty answer");
            }
        }

        throw new IOException($"the server at {path} closed the control connection without answering");
    }
}
