using System.Buffers.Binary;
using System.Net.Sockets;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>A reply the protocol or the model says is wrong: the fuzzer's "wrong reply" oracle.</summary>
internal sealed class WrongReplyException(string message) : Exception(message);

/// <summary>The server did not answer or close within the bound: the fuzzer's "hang" oracle.</summary>
internal sealed class HangException(string message) : Exception(message);

/// <summary>
/// One fuzz connection's socket: sends whatever bytes it is given, and reads with a bound on
/// every read, so a server that stops answering is reported as a hang instead of stalling the run.
/// </summary>
internal sealed class FuzzWire(Socket socket, TimeSpan bound) : IDisposable
{
    private readonly NetworkStream _stream = new(socket, ownsSocket: true);

    public static async Task<FuzzWire> ConnectAsync(string path, TimeSpan bound)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using var timeout = new CancellationTokenSource(bound);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token);
        }
        catch (OperationCanceledException)
        {
            socket.Dispose();
            throw new HangException("connect did not complete");
        }

        return new FuzzWire(socket, bound);
    }

    /// <summary>Sends; a server that already closed (it may, after bad input) is not an error here.</summary>
    public async Task<bool> TrySendAsync(byte[] bytes)
    {
        try
        {
            using var timeout = new CancellationTokenSource(bound);
            await _stream.WriteAsync(bytes, timeout.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            throw new HangException($"sending {bytes.Length} bytes did not complete");
        }
        catch (IOException)
        {
            return false;
        }
    }

    public async Task SendAsync(byte[] bytes)
    {
        if (!await TrySendAsync(bytes))
        {
            throw new WrongReplyException("the server closed the connection while it should have been reading");
        }
    }

    public async Task<byte[]> ReadAsync(int count, string what)
    {
        var buffer = new byte[count];
        using var timeout = new CancellationTokenSource(bound);
        try
        {
            await _stream.ReadExactlyAsync(buffer, timeout.Token);
        }
        catch (OperationCanceledException)
        {
            throw new HangException($"no {what} within {bound.TotalSeconds} s");
        }
        catch (Exception e) when (e is EndOfStreamException or IOException)
        {
            throw new WrongReplyException($"the server closed the connection instead of sending {what}");
        }

        return buffer;
    }

    /// <summary>Waits for the server to close; any bytes it sends first are drained (up to a bound).</summary>
    public async Task ExpectCloseAsync(string after)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(bound);
        try
        {
            for (int drained = 0; drained < 1 << 20;)
            {
                int n = await _stream.ReadAsync(buffer, timeout.Token);
                if (n == 0)
                {
                    return;
                }

                drained += n;
            }

            throw new WrongReplyException($"the server kept sending after {after}");
        }
        catch (OperationCanceledException)
        {
            throw new HangException($"the server neither closed nor answered within {bound.TotalSeconds} s after {after}");
        }
        catch (IOException)
        {
            // Reset by the server: closed.
        }
    }

    public static uint U32(byte[] b, int at) => BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at));

    public static ushort U16(byte[] b, int at) => BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(at));

    public static ulong U64(byte[] b, int at) => BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(at));

    public void Dispose() => _stream.Dispose();
}
