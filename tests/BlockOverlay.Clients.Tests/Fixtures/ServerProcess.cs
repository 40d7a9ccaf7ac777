using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// <c>bin/blockoverlay serve</c> as a child process, listening on a unix socket in its own
/// temporary directory and, if asked, on 127.0.0.1 at a free port. Ready once a connection
/// is accepted. Its log (stderr) is kept for failure messages and written to the test's
/// output when it stops; stopping is SIGTERM, then SIGKILL if it lingers.
/// </summary>
internal sealed class ServerProcess : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly string _directory;
    private bool _disposed;

    private ServerProcess(string directory, IReadOnlyList<string> options, IReadOnlyList<string> exports, int? port,
        IReadOnlyDictionary<string, string>? environment)
    {
        _directory = directory;
        Port = port;
        var startInfo = Redirected.StartInfo(BinaryPath, ["serve", .. options]);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            startInfo.Environment[name] = value;
        }

        foreach (var export in exports)
        {
            startInfo.ArgumentList.Add("--export");
            startInfo.ArgumentList.Add(export);
        }

        startInfo.ArgumentList.Add("--listen");
        startInfo.ArgumentList.Add("unix:" + SocketPath);
        if (port is { } p)
        {
            startInfo.ArgumentList.Add("--listen");
            startInfo.ArgumentList.Add(string.Create(CultureInfo.InvariantCulture, $"tcp:127.0.0.1:{p}"));
        }

        _process = new Process { StartInfo = startInfo };
        _process.OutputDataReceived += (_, e) => AppendLog(e.Data);
        _process.ErrorDataReceived += (_, e) => AppendLog(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The unix socket the server listens on.</summary>
    public string SocketPath => Path.Combine(_directory, "nbd.sock");

    /// <summary>The server's process id.</summary>
    public int Pid => _process.Id;

    /// <summary>The TCP port on 127.0.0.1, when started with <see cref="StartWithTcp"/>.</summary>
    public int? Port { get; }

    /// <summary>Everything the server has logged so far.</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary><c>bin/blockoverlay</c> of this checkout; fails the test when it was not built.</summary>
    public static string BinaryPath
    {
        get
        {
            var path = Path.Combine(RepositoryRoot, "bin", "blockoverlay");
            if (!File.Exists(path))
            {
                Assert.Fail($"the server is not built: {path} is missing; run `make build` (`make test` builds first)");
            }

            return path;
        }
    }

    /// <summary>The folder holding BlockOverlay.sln, found upwards from the test assembly.</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "BlockOverlay.sln")))
                {
                    return dir.FullName;
                }
            }

            throw new InvalidOperationException($"no BlockOverlay.sln above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>A server on a unix socket with the given exports (NAME=memory:SIZE, NAME=file:PATH[:ro]).</summary>
    public static ServerProcess Start(params string[] exports) => StartListening([], exports, tcp: false);

    /// <summary>A server on a unix socket and on 127.0.0.1 at a port that was free a moment ago.</summary>
    public static ServerProcess StartWithTcp(params string[] exports) => StartListening([], exports, tcp: true);

    /// <summary>A server with more options for <c>serve</c> (<c>--tls require</c>, say), on a unix socket and, if asked, on TCP.</summary>
    public static ServerProcess StartWithOptions(IReadOnlyList<string> options, bool tcp, params string[] exports) =>
        StartListening(options, exports, tcp);

    /// <summary>A server on a unix socket whose environment has these variables set too.</summary>
    public static ServerProcess StartWithEnvironment(IReadOnlyDictionary<string, string> environment, params string[] exports) =>
        StartListening([], exports, tcp: false, environment);

    /// <summary><c>nbd+unix:///NAME?socket=…</c></summary>
    public string UnixUri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    /// <summary><c>nbd://127.0.0.1:PORT/NAME</c></summary>
    public string TcpUri(string export) =>
        Port is { } p
            ? string.Create(CultureInfo.InvariantCulture, $"nbd://127.0.0.1:{p}/{export}")
            : throw new InvalidOperationException("this server was started without TCP; use StartWithTcp");

    /// <summary>The server's log, for assertion messages.</summary>
    public override string ToString() => $"--- server log ---\n{Log}";

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        try
        {
            Stop();
            TestContext.Out.WriteLine($"--- server log ({_process.StartInfo.FileName} exited with {_process.ExitCode}) ---");
            TestContext.Out.WriteLine(Log);
        }
        finally
        {
            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static ServerProcess StartListening(IReadOnlyList<string> options, IReadOnlyList<string> exports, bool tcp,
        IReadOnlyDictionary<string, string>? environment = null) =>
        ServerLauncher.Start(
            tcp,
            port => new ServerProcess(Directory.CreateTempSubdirectory("blockoverlay-clients-").FullName, options, exports, port, environment),
            server => ServerLauncher.WaitUntilAccepting(server._process, server.SocketPath, server.Port, () => server.Log, server.ToString));

    private void Stop()
    {
        if (_process.HasExited)
        {
            _process.WaitForExit();
            return;
        }

        ServerLauncher.Terminate(_process);
        if (!_process.WaitForExit(StopTimeout))
        {
            AppendLog($"[test] the server ignored SIGTERM for {StopTimeout.TotalSeconds} s; killing it");
            _process.Kill(entireProcessTree: true);
        }

        _process.WaitForExit();
    }

    private void AppendLog(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
