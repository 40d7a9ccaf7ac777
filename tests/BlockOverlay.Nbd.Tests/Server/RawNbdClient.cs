using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A client that sends exactly the bytes a test gives it, for the malformed and
/// borderline input a well-behaved library refuses to send. Every read has a timeout,
/// so a server that hangs fails the test instead of hanging it. After
/// <see cref="StartTlsAsync"/> the same bytes go through TLS.
/// </summary>
internal sealed class RawNbdClient(Socket socket) : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private Stream _stream = new NetworkStream(socket, ownsSocket: true);

    /// <summary>
    /// The TLS handshake as a client (after the server acknowledged STARTTLS), trusting only
    /// <paramref name="server"/>'s certificate, and presenting <paramref name="certificate"/> if given.
    /// </summary>
    public async Task StartTlsAsync(X509Certificate2 server, X509Certificate2? certificate = null)
    {
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false);
        _stream = tls;
        using var timeout = new CancellationTokenSource(Timeout);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ClientCertificates = certificate is null ? null : [certificate],
            RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == server.Thumbprint,
        }, timeout.Token);
    }

    public async Task SendAsync(params byte[][] parts)
    {
        foreach (var part in parts)
        {
            await _stream.WriteAsync(part);
        }
    }

    public async Task<byte[]> ReadAsync(int count)
    {
        var buffer = new byte[count];
        using var timeout = new CancellationTokenSource(Timeout);
        await _stream.ReadExactlyAsync(buffer, timeout.Token);
        return buffer;
    }

    /// <summary>True when the server closed the connection (and sent nothing more).</summary>
    public async Task<bool> IsClosedByServerAsync()
    {
        var buffer = new byte[1];
        using var timeout = new CancellationTokenSource(Timeout);
        try
        {
            return await _stream.ReadAsync(buffer, timeout.Token) == 0;
        }
        catch (IOException)
        {
            return true; // reset by the server
        }
    }

    /// <summary>Reads the greeting and answers with the given client flags.</summary>
    public async Task<ushort> StartAsync(uint clientFlags = 3)
    {
        var greeting = await ReadAsync(18);
        await SendAsync(U32(clientFlags));
        return BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
    }

    /// <summary>One option reply: (option, type, data).</summary>
    public async Task<(uint Option, uint Type, byte[] Data)> ReadOptionReplyAsync()
    {
        var header = await ReadAsync(20);
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != 0x0003e889045565a9)
        {
            throw new InvalidDataException("bad option reply magic");
        }

        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        var data = length == 0 ? [] : await ReadAsync((int)length);
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), data);
    }

    /// <summary>Option replies up to and including the final one (ACK or an error).</summary>
    public async Task<List<(uint Option, uint Type, byte[] Data)>> ReadOptionRepliesAsync()
    {
        var replies = new List<(uint, uint, byte[])>();
        while (true)
        {
            var reply = await ReadOptionReplyAsync();
            replies.Add(reply);
            if (reply.Type == 1 || (reply.Type & 0x80000000) != 0)
            {
                return replies;
            }
        }
    }

    /// <summary>Handshake then GO to an export, optionally with structured replies; returns the transmission flags.</summary>
    public async Task<ushort> AttachAsync(string export, bool structured = false)
    {
        await StartAsync();
        if (structured)
        {
            await SendAsync(Option(8, []));
            await ReadOptionRepliesAsync();
        }

        await SendAsync(Option(7, GoData(export)));
        var replies = await ReadOptionRepliesAsync();
        var info = replies.First(r => r.Type == 3 && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == 0);
        if (replies[^1].Type != 1)
        {
            throw new InvalidOperationException($"GO failed with reply type 0x{replies[^1].Type:x}");
        }

        return BinaryPrimitives.ReadUInt16BigEndian(info.Data.AsSpan(10));
    }

    /// <summary>A simple reply header: (error, cookie).</summary>
    public async Task<(uint Error, ulong Cookie)> ReadSimpleReplyAsync()
    {
        var header = await ReadAsync(16);
        if (BinaryPrimitives.ReadUInt32BigEndian(header) != 0x67446698)
        {
            throw new InvalidDataException("bad simple reply magic");
        }

        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8)));
    }

    public void Dispose() => _stream.Dispose();
}
