using System.Net;
using System.Net.Sockets;
using BlockOverlay.Nbd.Listeners;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// A minimal HTTP/1.1 server for Prometheus: <c>GET /metrics</c> (and HEAD) answered with the
/// text a callback renders; 404 for other paths, 405 for other methods, 400 for anything that
/// is not an HTTP/1.x request, 431 for a request head over <see cref="MaxRequestHeadBytes"/>,
/// 500 with a one-line reason when the callback throws. One request per connection.
/// <para>
/// Address: any IP address the operator names with <c>tcp:HOST:PORT</c> (the
/// <see cref="ListenAddress"/> syntax) is accepted, since a Prometheus on another machine
/// must be able to scrape; nothing listens unless the operator asks, and the documented
/// examples use 127.0.0.1. A unix socket is refused: Prometheus cannot scrape one.
/// </para>
/// <para>
/// Bounds: each connection — reading the request, rendering, sending the answer and closing —
/// must be over within the request timeout, so a client that trickles its request or never
/// reads the answer is cut off and holds nothing longer. Each connection runs on its own, so
/// scrapes proceed concurrently and <b>the callback may be called concurrently</b>. A failing
/// connection or callback never stops the server. <see cref="DisposeAsync"/> stops accepting,
/// cuts the open connections and waits for them.
/// </para>
/// </summary>
internal sealed class MetricsEndpoint : IAsyncDisposable
{
    public const int MaxRequestHeadBytes = 8 * 1024;
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(10);

    private readonly IPEndPoint _address;
    private readonly Func<string> _render;
    private readonly TimeSpan _requestTimeout;
    private readonly CancellationTokenSource _stop = new();

    // Added to and pruned by the accept loop only; read by DisposeAsync once that loop has ended.
    private readonly List<Task> _connections = [];
    private Socket? _listener;
    private Task? _acceptLoop;
    private bool _disposed;

    public MetricsEndpoint(IPEndPoint address, Func<string> render, TimeSpan? requestTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(render);
        _address = address;
        _render = render;
        _requestTimeout = requestTimeout ?? DefaultRequestTimeout;
    }

    /// <summary>Parses <c>tcp:HOST:PORT</c>; a unix address or a malformed one is a <see cref="FormatException"/>.</summary>
    public static IPEndPoint ParseAddress(string text) =>
        ListenAddress.Parse(text).EndPoint as IPEndPoint
        ?? throw new FormatException($"'{text}': metrics are served over TCP only (Prometheus cannot scrape a unix socket): use tcp:HOST:PORT, as in tcp:127.0.0.1:9810");

    /// <summary>Binds and starts serving; returns the bound endpoint (port 0 becomes the real port).</summary>
    /// <exception cref="IOException">The address cannot be bound (in use, not local, no permission).</exception>
    public EndPoint Start()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_listener is not null)
        {
            throw new InvalidOperationException("the metrics endpoint is already started");
        }

        // No SocketOptionName.ReuseAddress: on Linux .NET already sets SO_REUSEADDR at bind
        // (so our connections' TIME_WAIT does not stop a restart), and that option would add
        // SO_REUSEPORT, letting a second server bind the same port and share the scrapes.
        var socket = new Socket(_address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(_address);
            socket.Listen(64);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException($"cannot serve metrics on {new ListenAddress(_address)}: {e.Message}", e);
        }

        _listener = socket;
        _acceptLoop = AcceptLoopAsync(socket);
        return socket.LocalEndPoint!;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _stop.CancelAsync();
        _listener?.Dispose();
        if (_acceptLoop is not null)
        {
            await _acceptLoop;
        }

        await Task.WhenAll(_connections);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync(Socket listener)
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || _stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                // Transient (EMFILE, ECONNABORTED): back off a little and keep serving.
                if (!await DelayUnlessStoppedAsync(TimeSpan.FromMilliseconds(100)))
                {
                    return;
                }

                continue;
            }

            _connections.RemoveAll(task => task.IsCompleted);
            // Off the accept loop: rendering is synchronous and must not delay the next accept.
            _connections.Add(Task.Run(() => ServeAsync(client)));
        }
    }

    private async Task<bool> DelayUnlessStoppedAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _stop.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        deadline.CancelAfter(_requestTimeout);
        await using var stream = new NetworkStream(client, ownsSocket: true);
        try
        {
            client.NoDelay = true;
            if (await ReadRequestAsync(stream, deadline.Token) is not var (response, headOnly))
            {
                return; // The client closed before finishing a request: nobody to answer.
            }

            await stream.WriteAsync(response.Encode(headOnly), deadline.Token);
            await CloseGentlyAsync(client, stream, deadline.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
        {
            // The client left, or was too slow: closing the connection is all there is to do.
        }
    }

    /// <summary>Reads up to the blank line that ends the head and decides the answer; null if the client closed first.</summary>
    private async Task<(HttpResponse Response, bool HeadOnly)?> ReadRequestAsync(NetworkStream stream, CancellationToken cancel)
    {
        byte[] buffer = new byte[MaxRequestHeadBytes];
        int filled = 0;
        while (true)
        {
            int end = buffer.AsSpan(0, filled).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                return Answer(HttpRequestHead.TryParse(buffer.AsSpan(0, end)));
            }

            if (filled == buffer.Length)
            {
                return (HttpResponse.HeadTooLarge(MaxRequestHeadBytes), false);
            }

            int read = await stream.ReadAsync(buffer.AsMemory(filled), cancel);
            if (read == 0)
            {
                return null;
            }

            filled += read;
        }
    }

    private (HttpResponse Response, bool HeadOnly) Answer(HttpRequestHead? head)
    {
        if (head is not { } request)
        {
            return (HttpResponse.BadRequest, false);
        }

        bool headOnly = request.Method == "HEAD";
        if (request.Path != "/metrics")
        {
            return (HttpResponse.NotFound, headOnly);
        }

        return request.Method is "GET" or "HEAD"
            ? (Render(), headOnly)
            : (HttpResponse.MethodNotAllowed, false);
    }

    private HttpResponse Render()
    {
        try
        {
            return HttpResponse.Metrics(_render());
        }
        catch (Exception e)
        {
            // Whatever the callback throws becomes this scrape's 500; the server goes on.
            return HttpResponse.ServerError($"{e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>
    /// Ends our side, then reads (and drops) whatever the client still sends until it closes.
    /// Closing with unread bytes pending would make the kernel send a reset, which can destroy
    /// the answer before the client reads it: the case of a too-large head or a request body.
    /// </summary>
    private static async Task CloseGentlyAsync(Socket client, NetworkStream stream, CancellationToken cancel)
    {
        client.Shutdown(SocketShutdown.Send);
        byte[] discard = new byte[4096];
        while (await stream.ReadAsync(discard, cancel) > 0)
        {
        }
    }
}
