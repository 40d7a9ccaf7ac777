using System.Net.Security;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The one stream a connection's pipes read and write: the client's input and output (one
/// socket, or stdin and stdout), and after NBD_OPT_STARTTLS the same bytes through TLS.
/// </summary>
/// <remarks>
/// The pipes are made once over this stream and never swapped; STARTTLS swaps what is under
/// them. That is safe at exactly one moment, which <see cref="OptionNegotiation"/> picks:
/// the ACK is flushed (nothing of the plain writer is left to go out in the clear) and the
/// reader holds no byte past the STARTTLS option (the client sends nothing more before
/// that ACK, and a pipe reader reads from its stream only when asked for more than it
/// holds, so it has not read ahead; a client that did send more is dropped, see
/// <see cref="MessageReader.HoldsUnreadBytes"/>). From then on every read and write goes
/// through the <see cref="SslStream"/>. Disposing this stream closes all of them.
/// </remarks>
internal sealed class ConnectionStream : Stream
{
    private readonly Stream _input;
    private readonly Stream _output;
    private Stream _reads;
    private Stream _writes;
    private SslStream? _tls;

    public ConnectionStream(Stream input, Stream output)
    {
        _input = _reads = input;
        _output = _writes = output;
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    /// <summary>
    /// Runs the TLS handshake as the server over the plain streams and sends everything
    /// through TLS from then on. Returns the subject of the client's certificate when
    /// <paramref name="tls"/> verified one, else null.
    /// </summary>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The handshake failed (the client's certificate was refused, say).</exception>
    public async Task<string?> StartTlsAsync(NbdTls tls, CancellationToken cancel)
    {
        // SslStream needs one stream both ways; stdin and stdout become one here.
        var tlsStream = new SslStream(_input == _output ? _input : new ConnectionStream(_input, _output), leaveInnerStreamOpen: false);
        _tls = tlsStream;
        await tlsStream.AuthenticateAsServerAsync(tls.AuthenticationOptions(), cancel);
        _reads = _writes = tlsStream;
        return tls.VerifiesClients ? tlsStream.RemoteCertificate?.Subject : null;
    }

    /// <summary>Ends TLS with a close_notify so the client sees a clean end, not a truncation; plain streams have nothing to end.</summary>
    public async ValueTask EndTlsAsync()
    {
        if (_tls is not { IsAuthenticated: true } tls)
        {
            return;
        }

        try
        {
            await tls.ShutdownAsync();
        }
        catch (Exception e) when (FailureMapping.IsPeerGone(e))
        {
            // A client that hung up first needs no goodbye.
        }
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _reads.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _reads.ReadAsync(buffer, offset, count, cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => _reads.Read(buffer, offset, count);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        _writes.WriteAsync(buffer, cancellationToken);

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        _writes.WriteAsync(buffer, offset, count, cancellationToken);

    public override void Write(byte[] buffer, int offset, int count) => _writes.Write(buffer, offset, count);

    public override Task FlushAsync(CancellationToken cancellationToken) => _writes.FlushAsync(cancellationToken);

    public override void Flush() => _writes.Flush();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _tls?.Dispose();
            _input.Dispose();
            _output.Dispose();
        }

        base.Dispose(disposing);
    }
}
