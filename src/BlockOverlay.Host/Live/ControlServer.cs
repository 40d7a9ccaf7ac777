using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Live;

/// <summary>
/// The control socket of a running server: a unix socket next to the store (mode 0600, so
/// only its owner can change instances), through which the CLI runs instance commands on
/// the live store.
/// </summary>
/// <remarks>
/// Protocol: one request per connection. The client sends one line of JSON (an
/// <see cref="InstanceRequest"/>, at most 64 KiB) and reads lines of JSON back (each a
/// <see cref="ControlReply"/>): progress reports of a long command, then its
/// <see cref="InstanceResponse"/>, then the server closes. A request it cannot read is
/// answered with <see cref="RequestRefused"/>; a command that hits a bug is logged with its
/// stack trace and answered with <see cref="InternalError"/>. Framed by newlines, not by length prefixes:
/// System.Text.Json never writes a raw newline inside a value, so a line is a message; the
/// reader stays a line reader with a size bound, and a person can talk to the socket with
/// socat to see what a server says.
/// Connections are served concurrently, so a slow client holds up only itself; commands on
/// one instance take turns (<see cref="StoreHost.RunAsync"/>). The store's lock (flock) makes this
/// the only server of the store, so a socket file found at start is stale and replaced.
/// </remarks>
internal sealed class ControlServer : IAsyncDisposable
{
    private const int MaxRequestBytes = 64 * 1024;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop = new();
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan ProgressTimeout = TimeSpan.FromSeconds(5);
    private readonly Func<InstanceRequest, Action<ProgressReport>, CancellationToken, Task<InstanceResponse>> _handle;
    private readonly ILogger _logger;
    private readonly HashSet<Task> _serving = [];   // commands in progress; guarded by itself
    private Task _accepting = Task.CompletedTask;

    public ControlServer(string path, Func<InstanceRequest, Action<ProgressReport>, CancellationToken, Task<InstanceResponse>> handle, ILogger logger)
    {
        Path = path;
        _handle = handle;
        _logger = logger;
    }

    /// <summary>Where the socket is.</summary>
    public string Path { get; }

    /// <summary>The control socket of the store at <paramref name="storePath"/>.</summary>
    public static string PathFor(string storePath) =>
        StoreDevices.IsRbd(storePath) ? StoreDevices.ControlPathFor(storePath) : System.IO.Path.GetFullPath(storePath) + ".control";

    public void Start()
    {
        File.Delete(Path);
        _socket.Bind(new UnixDomainSocketEndPoint(Path));
        File.SetUnixFileMode(Path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _socket.Listen(); // the kernel's longest queue (somaxconn): a host starting many containers asks at once
        _accepting = AcceptAsync(_stop.Token);
    }

    /// <summary>
    /// Stops accepting and waits for the commands in progress, so none runs on a store being
    /// closed; commands still waiting for an instance, and copies (commit, clone) between
    /// chunks, are told to stop and fail with "the server is stopping".
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _socket.Dispose();
        await _accepting;
        Task[] serving;
        lock (_serving)
        {
            serving = [.. _serving];
        }

        await Task.WhenAll(serving);
        File.Delete(Path);
        _stop.Dispose();
    }

    private async Task AcceptAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(stop);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            var serving = ServeAsync(client);
            lock (_serving)
            {
                _serving.Add(serving);
            }

            _ = serving.ContinueWith(done =>
            {
                lock (_serving)
                {
                    _serving.Remove(done);
                }
            }, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket client)
    {
        using (client)
        await using (var stream = new NetworkStream(client, ownsSocket: false))
        {
            InstanceResponse response;
            try
            {
                var request = Read(await ReadLineAsync(stream));
                response = await HandleAsync(request, ProgressTo(client, stream));
                HostLog.ControlCommand(_logger, request.Command, request is NamedRequest named ? named.Name : "-", response.ExitCode);
            }
            catch (Exception e) when (e is JsonException or IOException or OperationCanceledException or SocketException)
            {
                // No request: not one (JSON), or the caller broke off or was silent past the timeout.
                response = new RequestRefused(e.Message);
            }

            try
            {
                await stream.WriteAsync(Line(response));
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // The caller left before the answer: the command happened (or not) all the same.
            }
        }
    }

    /// <summary>
    /// The command's answer. The handler answers every failure it expects (a refused command is
    /// a <see cref="CommandFailed"/>), so what it throws is a bug: logged here with its stack,
    /// and the caller is told it was one, not that its input was wrong.
    /// </summary>
    private async Task<InstanceResponse> HandleAsync(InstanceRequest request, Action<ProgressReport> progress)
    {
        try
        {
            return await _handle(request, progress, _stop.Token);
        }
#pragma warning disable CA1031 // A bug in one command must not take the control socket down; it is logged whole.
        catch (Exception e)
#pragma warning restore CA1031
        {
            HostLog.ControlCommandCrashed(_logger, request.Command, e);
            return new InternalError($"{e.GetType().FullName}: {e.Message}".ReplaceLineEndings(" "));
        }
    }

    /// <summary>
    /// Sends progress lines, at most five a second, written from the command's thread (a
    /// short line to a local socket). A caller that stops reading holds the command up for at
    /// most <see cref="ProgressTimeout"/> once; after any failed write no more are sent.
    /// </summary>
    private static Action<ProgressReport> ProgressTo(Socket client, NetworkStream stream)
    {
        client.SendTimeout = (int)ProgressTimeout.TotalMilliseconds;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var last = -ProgressInterval;
        bool gone = false;
        return report =>
        {
            if (gone || (clock.Elapsed - last < ProgressInterval && report.Done < report.Total))
            {
                return;
            }

            last = clock.Elapsed;
            try
            {
                stream.Write(Line(report));
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                gone = true; // the caller is gone or stuck; the command goes on
            }
        };
    }

    private static byte[] Line(ControlReply reply) =>
        [.. JsonSerializer.SerializeToUtf8Bytes(reply, ControlJson.Default.ControlReply), (byte)'\n'];

    /// <summary>A request line as a request; a line that is not one is a <see cref="JsonException"/> saying why.</summary>
    internal static InstanceRequest Read(string line)
    {
        try
        {
            return JsonSerializer.Deserialize(line, ControlJson.Default.InstanceRequest) ?? throw new JsonException("the request is null");
        }
        catch (NotSupportedException e)
        {
            // What System.Text.Json throws for a command it does not know (no derived type), or none.
            throw new JsonException(e.Message, e);
        }
    }

    /// <summary>Reads one request line, bounded in size and time.</summary>
    private static async Task<string> ReadLineAsync(NetworkStream stream)
    {
        using var timeout = new CancellationTokenSource(RequestTimeout);
        var bytes = new List<byte>();
        byte[] buffer = new byte[4096];
        while (true)
        {
            int n = await stream.ReadAsync(buffer, timeout.Token);
            int newline = Array.IndexOf(buffer, (byte)'\n', 0, n);
            bytes.AddRange(buffer.AsSpan(0, newline < 0 ? n : newline));
            if (newline >= 0 || n == 0)
            {
                return Encoding.UTF8.GetString([.. bytes]);
            }

            if (bytes.Count > MaxRequestBytes)
            {
                throw new IOException($"request longer than {MaxRequestBytes} bytes");
            }
        }
    }
}
