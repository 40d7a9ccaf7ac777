using System.Net;
using BlockOverlay.Nbd.Listeners;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// Serves the Prometheus exposition at <c>http://HOST:PORT/metrics</c> with Kestrel, which
/// does the HTTP: malformed requests get its 400, a request head over
/// <see cref="MaxRequestHeadBytes"/> its 431. This class adds only the one resource:
/// GET and HEAD of <c>/metrics</c>, 404 for other paths, 405 (with Allow) for other methods,
/// 500 with a one-line reason when writing the exposition fails. Every answer closes its connection.
/// <para>
/// Address: any IP address the operator names with <c>tcp:HOST:PORT</c> (the
/// <see cref="ListenAddress"/> syntax) is accepted, since a Prometheus on another machine
/// must be able to scrape; nothing listens unless the operator asks, and the documented
/// examples use 127.0.0.1. A unix socket is refused: Prometheus cannot scrape one.
/// </para>
/// <para>
/// Bounds: a client gets the request timeout to send its request head, and each answer —
/// collecting and sending — must be over within it too, or the connection is cut; so a client
/// that trickles its request or never reads the answer holds nothing for longer. Scrapes run
/// concurrently, so <b>the exposition callback may be called concurrently</b>. Stopping cuts
/// the open connections.
/// </para>
/// </summary>
internal sealed class MetricsEndpoint : IAsyncDisposable
{
    public const int MaxRequestHeadBytes = 8 * 1024;
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(10);

    private readonly IPEndPoint _address;
    private readonly KestrelServer _server;
    private readonly Scrape _scrape;
    private bool _started;
    private bool _disposed;

    /// <param name="address">Where to listen.</param>
    /// <param name="exposition">Writes the exposition (text format 0.0.4) to the stream, as <see cref="ServerMetrics.WriteAsync"/> does.</param>
    /// <param name="requestTimeout">How long a client has to send its request head, and the answer to be sent.</param>
    /// <param name="logger">Where a bug in the exposition is logged with its stack (the scrape itself gets a 500).</param>
    public MetricsEndpoint(IPEndPoint address, Func<Stream, CancellationToken, Task> exposition, TimeSpan? requestTimeout = null,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(exposition);
        _address = address;
        var timeout = requestTimeout ?? DefaultRequestTimeout;
        _scrape = new Scrape(exposition, timeout, logger ?? NullLogger.Instance);
        var options = new KestrelServerOptions { AddServerHeader = false };
        options.Limits.MaxRequestHeadersTotalSize = MaxRequestHeadBytes;
        options.Limits.RequestHeadersTimeout = timeout;
        options.Listen(address);
        var loggers = NullLoggerFactory.Instance; // Kestrel's own connection logging is not the server's business.
        _server = new KestrelServer(Options.Create(options), new SocketTransportFactory(Options.Create(new SocketTransportOptions()), loggers), loggers);
    }

    /// <summary>Parses <c>tcp:HOST:PORT</c>; a unix address or a malformed one is a <see cref="FormatException"/>.</summary>
    public static IPEndPoint ParseAddress(string text) =>
        ListenAddress.Parse(text).EndPoint as IPEndPoint
        ?? throw new FormatException($"'{text}': metrics are served over TCP only (Prometheus cannot scrape a unix socket): use tcp:HOST:PORT, as in tcp:127.0.0.1:9810");

    /// <summary>Binds and starts serving; returns the bound endpoint (port 0 becomes the real port).</summary>
    /// <exception cref="IOException">The address cannot be bound (in use, not local, no permission).</exception>
    public async Task<IPEndPoint> StartAsync(CancellationToken cancel = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_started)
        {
            throw new InvalidOperationException("the metrics endpoint is already started");
        }

        _started = true;
        try
        {
            await _server.StartAsync(_scrape, cancel);
        }
        catch (IOException e)
        {
            throw new IOException($"cannot serve metrics on {new ListenAddress(_address)}: {e.Message}", e);
        }

        // Kestrel reports the address it bound as a URL; the port is what port 0 leaves open.
        var bound = new Uri(_server.Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single());
        return new IPEndPoint(_address.Address, bound.Port);
    }

    /// <summary>Stops listening and cuts the open connections at once (a scrape has nothing worth waiting for).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_started)
        {
            await _server.StopAsync(new CancellationToken(canceled: true));
        }

        _server.Dispose();
    }

    /// <summary>The one resource, as Kestrel's request handler.</summary>
    private sealed class Scrape(Func<Stream, CancellationToken, Task> exposition, TimeSpan timeout, ILogger logger) : IHttpApplication<HttpContext>
    {
        public HttpContext CreateContext(IFeatureCollection contextFeatures) => new DefaultHttpContext(contextFeatures);

        public void DisposeContext(HttpContext context, Exception? exception)
        {
        }

        public async Task ProcessRequestAsync(HttpContext context)
        {
            // Past the deadline the connection is cut, whatever the answer was doing.
            using var deadline = new CancellationTokenSource(timeout);
            await using var cut = deadline.Token.Register(context.Abort);
            var request = context.Request;
            var response = context.Response;
            response.Headers.Connection = "close";
            if (request.Path != "/metrics")
            {
                await TextAsync(response, StatusCodes.Status404NotFound, "the metrics are at /metrics");
            }
            else if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
            {
                response.Headers.Allow = "GET, HEAD";
                await TextAsync(response, StatusCodes.Status405MethodNotAllowed, "/metrics answers GET and HEAD");
            }
            else
            {
                var (exposition, failure) = await CollectAsync(deadline.Token);
                if (failure is not null)
                {
                    await TextAsync(response, StatusCodes.Status500InternalServerError, "metrics unavailable: " + failure);
                    return;
                }

                response.ContentType = PrometheusConstants.TextContentTypeWithVersionAndEncoding;
                response.ContentLength = exposition.Length;
                await response.Body.WriteAsync(exposition, deadline.Token);
            }
        }

        /// <summary>
        /// The whole exposition, collected before anything is sent so that a failure can still
        /// be a 500; or why collecting failed, in one line.
        /// </summary>
        private async Task<(byte[] Exposition, string? Failure)> CollectAsync(CancellationToken cancel)
        {
            try
            {
                using var buffer = new MemoryStream();
                await exposition(buffer, cancel);
                return (buffer.ToArray(), null);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Whatever the exposition throws becomes this scrape's 500; the server goes on.
                // A bug is also logged with its stack, not only told to whoever scraped.
                if (OperatorFailures.MessageFor(e) is null)
                {
                    HostLog.MetricsCrashed(logger, e);
                }

                return ([], $"{e.GetType().Name}: {e.Message}".ReplaceLineEndings(" "));
            }
        }

        private static Task TextAsync(HttpResponse response, int status, string line)
        {
            response.StatusCode = status;
            response.ContentType = "text/plain; charset=utf-8";
            return response.WriteAsync(line + "\n");
        }
    }
}
