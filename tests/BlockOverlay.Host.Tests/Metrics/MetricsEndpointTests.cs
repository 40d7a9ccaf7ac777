using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using BlockOverlay.Host.Metrics;
using Microsoft.Extensions.Logging;
using Prometheus;

namespace BlockOverlay.Host.Tests.Metrics;

/// <summary>
/// The /metrics endpoint over real sockets: what a scraper gets, what a wrong or hostile
/// client gets, and that none of them stops the next scrape. The expositions here are a
/// registry of one gauge, written after a callback that stands for the server's copying of
/// its counters.
/// </summary>
public class MetricsEndpointTests
{
    private const string Body = "# HELP up Up.\n# TYPE up gauge\nup 1\n";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly List<MetricsEndpoint> _endpoints = [];
    private HttpClient _http = null!;

    [SetUp]
    public void CreateClient() => _http = new HttpClient { Timeout = Patience };

    [TearDown]
    public async Task StopEverything()
    {
        _http.Dispose();
        foreach (var endpoint in _endpoints)
        {
            await endpoint.DisposeAsync();
        }
    }

    private readonly CapturingLogger _logger = new();

    private async Task<IPEndPoint> StartAsync(Func<Stream, CancellationToken, Task> exposition, TimeSpan? requestTimeout = null, IPEndPoint? address = null)
    {
        var endpoint = new MetricsEndpoint(address ?? MetricsEndpoint.ParseAddress("tcp:127.0.0.1:0"), exposition, requestTimeout, _logger);
        _endpoints.Add(endpoint);
        return await endpoint.StartAsync();
    }

    /// <summary>An exposition that is <see cref="Body"/>, written after <paramref name="beforeScrape"/> (whose exceptions fail the scrape).</summary>
    private static Func<Stream, CancellationToken, Task> Up(Action? beforeScrape = null)
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        Prometheus.Metrics.WithCustomRegistry(registry).CreateGauge("up", "Up.").Set(1);
        return Exposition(registry, beforeScrape);
    }

    private static Func<Stream, CancellationToken, Task> Exposition(CollectorRegistry registry, Action? beforeScrape = null) => (to, cancel) =>
    {
        beforeScrape?.Invoke();
        return registry.CollectAndExportAsTextAsync(to, cancel);
    };

    private static Uri Url(IPEndPoint at, string path) => new($"http://{at}{path}");

    [Test]
    public async Task Get_metrics_returns_the_rendered_text_as_the_exposition_format()
    {
        var at = await StartAsync(Up());
        Assert.That(at.Port, Is.Not.Zero, "the real port is returned");

        using var response = await _http.GetAsync(Url(at, "/metrics"));

        Assert.Multiple(async () =>
        {
            Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(response.Content.Headers.ContentType!.ToString(), Is.EqualTo("text/plain; version=0.0.4; charset=utf-8"));
            Assert.That(response.Content.Headers.ContentLength, Is.EqualTo(Body.Length));
            Assert.That(await response.Content.ReadAsStringAsync(), Is.EqualTo(Body));
        });
    }

    [Test]
    public async Task The_body_is_rendered_afresh_for_each_scrape_in_utf8()
    {
        var registry = Prometheus.Metrics.NewCustomRegistry();
        var scrapes = Prometheus.Metrics.WithCustomRegistry(registry).CreateCounter("n", "Scrapes, «counted».");
        var at = await StartAsync(Exposition(registry, () => scrapes.Inc()));

        string first = await _http.GetStringAsync(Url(at, "/metrics"));
        string second = await _http.GetStringAsync(Url(at, "/metrics?anything=1"));

        Assert.That(first, Does.Contain("«counted»").And.EndWith("n 1\n"));
        Assert.That(second, Does.EndWith("n 2\n"));
    }

    [Test]
    public async Task Head_gets_the_headers_of_get_and_no_body()
    {
        var at = await StartAsync(Up());

        string response = await ExchangeAsync(at, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");

        Assert.That(response, Does.StartWith("HTTP/1.1 200 OK\r\n")
            .And.Contain($"\r\nContent-Length: {Body.Length}\r\n")
            .And.EndWith("\r\n\r\n"), "headers only");
    }

    [Test]
    public async Task Other_paths_get_404()
    {
        var at = await StartAsync(Up());

        using var response = await _http.GetAsync(Url(at, "/"));
        using var near = await _http.GetAsync(Url(at, "/metrics/"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(near.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
    }

    [Test]
    public async Task Other_methods_get_405_with_the_allowed_ones()
    {
        int renders = 0;
        var at = await StartAsync(Up(() => Interlocked.Increment(ref renders)));

        using var response = await _http.PostAsync(Url(at, "/metrics"), new StringContent("x=1"));

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.MethodNotAllowed));
        Assert.That(response.Content.Headers.Allow, Is.EquivalentTo(new[] { "GET", "HEAD" }));
        Assert.That(renders, Is.Zero, "nothing rendered for a refused request");
    }

    // Kestrel reads the last word of a request line as its version: a line of three words
    // whose last is not HTTP/1.x is answered 505, anything else that is not HTTP 400.
    [TestCase("this is not http\r\n\r\n", "505 HTTP Version Not Supported")]
    [TestCase("GET /metrics HTTP/1.1\r\nHost x\r\n\r\n", "400 Bad Request")]
    [TestCase("GET /metrics HTTP/1.1\r\n\r\n", "400 Bad Request")] // HTTP/1.1 without Host (RFC 9112 3.2)
    [TestCase("\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003\r\n\r\n", "400 Bad Request")]
    public async Task Garbage_is_refused_and_the_server_keeps_serving(string garbage, string status)
    {
        var at = await StartAsync(Up());

        string response = await ExchangeAsync(at, garbage);

        Assert.That(response, Does.StartWith($"HTTP/1.1 {status}\r\n"));
        Assert.That(await _http.GetStringAsync(Url(at, "/metrics")), Is.EqualTo(Body));
    }

    [Test]
    public async Task An_oversized_request_head_gets_431_intact_and_the_server_keeps_serving()
    {
        var at = await StartAsync(Up());
        string huge = "GET /metrics HTTP/1.1\r\nX-Filler: " + new string('a', 64 * 1024) + "\r\n\r\n";

        string response = await ExchangeAsync(at, huge);

        Assert.That(response, Does.StartWith("HTTP/1.1 431 Request Header Fields Too Large\r\n").And.EndWith("\r\n\r\n"));
        Assert.That(await _http.GetStringAsync(Url(at, "/metrics")), Is.EqualTo(Body));
    }

    [Test]
    public async Task An_answer_leaving_request_bytes_unread_ends_in_a_close_not_a_reset()
    {
        // Closing a socket with unread input makes the kernel send a reset, which on a real
        // network can destroy an answer still in flight; the server must read them away first.
        var at = await StartAsync(Up());
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(at);
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nX-Filler: " + new string('a', 64 * 1024) + "\r\n\r\n"));

        long received = await DrainAsync(socket).WaitAsync(Patience);
        await Task.Delay(100); // A reset sent after the close would have arrived by now.

        Assert.That(received, Is.GreaterThan(0), "the 431 answer arrived");
        Assert.That(socket.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.Error), Is.Zero, "SO_ERROR: no reset from the server");
    }

    [Test]
    public async Task A_request_head_just_under_the_limit_is_served()
    {
        var at = await StartAsync(Up());
        string head = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ";
        string full = head + new string('a', MetricsEndpoint.MaxRequestHeadBytes - head.Length - 4) + "\r\n\r\n";
        Assert.That(full, Has.Length.EqualTo(MetricsEndpoint.MaxRequestHeadBytes));

        string response = await ExchangeAsync(at, full);

        Assert.That(response, Does.StartWith("HTTP/1.1 200 OK\r\n").And.EndWith(Body));
    }

    [Test]
    public async Task A_throwing_callback_gets_a_one_line_500_and_the_next_scrape_works()
    {
        int calls = 0;
        var at = await StartAsync(Up(() =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                throw new InvalidOperationException("store closed\nmid-scrape");
            }
        }));

        using var failed = await _http.GetAsync(Url(at, "/metrics"));
        string reason = await failed.Content.ReadAsStringAsync();
        string recovered = await _http.GetStringAsync(Url(at, "/metrics"));

        Assert.Multiple(() =>
        {
            Assert.That(failed.StatusCode, Is.EqualTo(HttpStatusCode.InternalServerError));
            Assert.That(reason, Is.EqualTo("metrics unavailable: InvalidOperationException: store closed mid-scrape\n"));
            Assert.That(recovered, Is.EqualTo(Body));
            var bug = _logger.Entries.SingleOrDefault(e => e.Level == LogLevel.Error);
            Assert.That(bug.Exception, Is.TypeOf<InvalidOperationException>(), "a bug is logged, not only told to the scraper");
            Assert.That(bug.Exception?.StackTrace, Is.Not.Null.And.Not.Empty, "with its stack");
        });
    }

    [Test]
    public async Task Scrapes_are_served_concurrently()
    {
        // Each render waits until all of them are inside the callback: only possible if
        // the endpoint runs them at the same time. A render that waits in vain fails (500).
        const int Scrapers = 2;
        using var allInside = new CountdownEvent(Scrapers);
        var at = await StartAsync(Up(() =>
        {
            allInside.Signal();
            if (!allInside.Wait(Patience))
            {
                throw new TimeoutException("scrapes were served one at a time");
            }
        }));

        var scrapes = Enumerable.Range(0, Scrapers).Select(_ => _http.GetStringAsync(Url(at, "/metrics")));
        string[] bodies = await Task.WhenAll(scrapes);

        Assert.That(bodies, Has.All.EqualTo(Body));
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task A_client_that_stalls_mid_request_is_cut_off_and_does_not_block_others()
    {
        var timeout = TimeSpan.FromSeconds(2);
        var at = await StartAsync(Up(), timeout);
        using var staller = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await staller.ConnectAsync(at);
        await staller.SendAsync(Encoding.ASCII.GetBytes("GET /metr"));
        var clock = Stopwatch.StartNew();
        var cutOff = ReadToEndAsync(staller);

        Assert.That(await _http.GetStringAsync(Url(at, "/metrics")), Is.EqualTo(Body));
        Assert.That(cutOff.IsCompleted, Is.False, "the scrape was served while the staller still held its connection");

        // Kestrel says why as it closes: 408, the request head took too long.
        Assert.That(await cutOff.WaitAsync(Patience), Does.StartWith("HTTP/1.1 408 Request Timeout\r\n"), "the server closed the stalled connection");
        Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(timeout * 0.5), "not cut off before its time");
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task A_client_that_never_reads_the_answer_is_cut_off()
    {
        // 16 MiB is far more than the kernel's socket buffers hold: the send can only
        // complete if the client reads, so the server must give up on its own.
        const int Large = 16 << 20;
        var registry = Prometheus.Metrics.NewCustomRegistry();
        Prometheus.Metrics.WithCustomRegistry(registry).CreateGauge("large", new string('x', Large));
        var at = await StartAsync(Exposition(registry), TimeSpan.FromMilliseconds(300));
        using var sluggard = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await sluggard.ConnectAsync(at);
        await sluggard.SendAsync(Encoding.ASCII.GetBytes("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
        await Task.Delay(TimeSpan.FromSeconds(1));

        long received = await DrainAsync(sluggard).WaitAsync(Patience);

        Assert.That(received, Is.LessThan(Large), "the answer was cut short, not waited out");
    }

    [Test]
    public async Task Disposing_cuts_open_connections_and_stops_listening()
    {
        var endpoint = new MetricsEndpoint(MetricsEndpoint.ParseAddress("tcp:127.0.0.1:0"), Up());
        var at = await endpoint.StartAsync();
        using var staller = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await staller.ConnectAsync(at);
        await staller.SendAsync(Encoding.ASCII.GetBytes("GET /metr"));
        await Task.Delay(100);
        var clock = Stopwatch.StartNew();

        await endpoint.DisposeAsync().AsTask().WaitAsync(Patience);

        Assert.That(clock.Elapsed, Is.LessThan(MetricsEndpoint.DefaultRequestTimeout / 2), "the stalled connection did not hold up the stop");
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        Assert.ThrowsAsync<SocketException>(async () => await late.ConnectAsync(at), "nothing listens any more");
    }

    [Test]
    public async Task A_port_in_use_is_an_io_error_naming_the_address()
    {
        var at = await StartAsync(Up());
        var second = new MetricsEndpoint(at, Up());
        _endpoints.Add(second);

        var error = Assert.ThrowsAsync<IOException>(() => second.StartAsync());

        Assert.That(error!.Message, Does.Contain($"tcp:127.0.0.1:{at.Port}"));
    }

    [Test]
    public async Task A_restarted_endpoint_binds_the_same_port_although_its_closed_connections_linger()
    {
        // The endpoint closes first, so its side of each scraped connection sits in
        // TIME_WAIT for a minute; a restart must still be able to bind the port.
        var first = new MetricsEndpoint(MetricsEndpoint.ParseAddress("tcp:127.0.0.1:0"), Up());
        var at = await first.StartAsync();
        Assert.That(await ExchangeAsync(at, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Does.EndWith(Body));
        await first.DisposeAsync();

        Assert.That(await StartAsync(Up(), address: at), Is.EqualTo(at));
        Assert.That(await _http.GetStringAsync(Url(at, "/metrics")), Is.EqualTo(Body));
    }

    [Test]
    public void Addresses_are_tcp_host_port_of_any_ip_and_never_unix()
    {
        Assert.Multiple(() =>
        {
            Assert.That(MetricsEndpoint.ParseAddress("tcp:127.0.0.1:9810"), Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9810)));
            Assert.That(MetricsEndpoint.ParseAddress("tcp:[::1]:9810"), Is.EqualTo(new IPEndPoint(IPAddress.IPv6Loopback, 9810)));
            Assert.That(MetricsEndpoint.ParseAddress("tcp:0.0.0.0:9810"), Is.EqualTo(new IPEndPoint(IPAddress.Any, 9810)));
            Assert.That(() => MetricsEndpoint.ParseAddress("unix:/run/metrics.sock"), Throws.TypeOf<FormatException>().With.Message.Contains("TCP only"));
            Assert.That(() => MetricsEndpoint.ParseAddress("127.0.0.1:9810"), Throws.TypeOf<FormatException>());
            Assert.That(() => MetricsEndpoint.ParseAddress("tcp:127.0.0.1:99999"), Throws.TypeOf<FormatException>());
        });
    }

    /// <summary>Sends raw bytes (Latin-1, so any byte can be written) and reads the answer to the end.</summary>
    private static async Task<string> ExchangeAsync(IPEndPoint at, string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(at);
        await socket.SendAsync(Encoding.Latin1.GetBytes(request));
        return await ReadToEndAsync(socket).WaitAsync(Patience);
    }

    /// <summary>Reads the answer on a connected socket until the server closes the connection.</summary>
    private static async Task<string> ReadToEndAsync(Socket socket)
    {
        using var answer = new MemoryStream();
        byte[] buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer.AsMemory())) > 0)
        {
            answer.Write(buffer, 0, read);
        }

        return Encoding.UTF8.GetString(answer.ToArray());
    }

    /// <summary>Reads until the server closes (or resets) the connection; returns the bytes received.</summary>
    private static async Task<long> DrainAsync(Socket socket)
    {
        long total = 0;
        byte[] buffer = new byte[64 * 1024];
        try
        {
            int read;
            while ((read = await socket.ReceiveAsync(buffer)) > 0)
            {
                total += read;
            }
        }
        catch (SocketException)
        {
            // A reset ends the answer as surely as a close.
        }

        return total;
    }
}
