using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// <c>bin/blockoverlay serve --store PATH</c> as a child process on a unix socket in the
/// workspace (and on 127.0.0.1 at a free port if asked). Ready once a connection is
/// accepted. Unlike <see cref="ServerProcess"/> it can be killed with SIGKILL or stopped
/// with SIGTERM by the test, and restarted on the same store and socket.
/// </summary>
internal sealed class StoreServer : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private bool _disposed;

    private StoreServer(string storePath, string socketPath, int? port, IReadOnlyList<string> extraArgs)
    {
        SocketPath = socketPath;
        Port = port;
        var startInfo = Redirected.StartInfo(ServerProcess.BinaryPath, ["serve", "--store", storePath, "--listen", "unix:" + socketPath]);

        if (port is { } p)
        {
            startInfo.ArgumentList.Add("--listen");
            startInfo.ArgumentList.Add(string.Create(CultureInfo.InvariantCulture, $"tcp:127.0.0.1:{p}"));
        }

        foreach (var arg in extraArgs)
        {
            startInfo.ArgumentList.Add(arg);
        }

        _process = new Process { StartInfo = startInfo };
        _process.OutputDataReceived += (_, e) => AppendLog(e.Data);
        _process.ErrorDataReceived += (_, e) => AppendLog(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string SocketPath { get; }

    public int? Port { get; }

    public int ProcessId => _process.Id;

    /// <summary>Everything the server printed so far (stdout and stderr).</summary>
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

    /// <summary>
    /// Serves the workspace's store on <c>workspace/nbd.sock</c> (and TCP when asked);
    /// <paramref name="extraArgs"/> go to <c>serve</c> after the rest.
    /// </summary>
    public static StoreServer Start(StoreWorkspace workspace, bool tcp = false, params string[] extraArgs) =>
        StartOn(workspace, "nbd.sock", tcp, extraArgs);

    /// <summary>As <see cref="Start"/>, on <c>workspace/SOCKET</c>: a second server of the same store (a takeover) beside the first.</summary>
    public static StoreServer StartOn(StoreWorkspace workspace, string socket, bool tcp = false, params string[] extraArgs) =>
        ServerLauncher.Start(
            tcp,
            port => new StoreServer(workspace.StorePath, workspace[socket], port, extraArgs),
            server =>
            {
                ServerLauncher.WaitUntilAccepting(server._process, server.SocketPath, server.Port, () => server.Log, server.ToString);
                server.WaitForStartLog();
            });

    /// <summary>
    /// The server logs how the store opened and which instances it refused before it listens,
    /// but its output reaches <see cref="Log"/> through an asynchronous reader: wait (at most
    /// 5 s, then go on) until the "listening on" line, which comes after those, is in it.
    /// </summary>
    private void WaitForStartLog()
    {
        for (var deadline = DateTime.UtcNow.AddSeconds(5); !Log.Contains("listening on", StringComparison.Ordinal) && DateTime.UtcNow < deadline;)
        {
            Thread.Sleep(10);
        }
    }

    /// <summary>SIGSTOP: the server is frozen with everything it holds (locks, connections, dirty data).</summary>
    public void Pause()
    {
        AppendLog("[test] SIGSTOP");
        ServerLauncher.Pause(_process, pause: true);
    }

    /// <summary>SIGCONT after <see cref="Pause"/>.</summary>
    public void Resume()
    {
        AppendLog("[test] SIGCONT");
        ServerLauncher.Pause(_process, pause: false);
    }

    /// <summary>Waits for the server to exit by itself; returns its exit code (fails the test if it does not).</summary>
    public int WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            Assert.Fail($"the server did not exit within {timeout.TotalSeconds} s\n{this}");
        }

        _process.WaitForExit(); // drains the log
        return _process.ExitCode;
    }

    public string UnixUri(string export) => $"nbd+unix:///{export}?socket={SocketPath}";

    public string TcpUri(string export) =>
        Port is { } p
            ? string.Create(CultureInfo.InvariantCulture, $"nbd://127.0.0.1:{p}/{export}")
            : throw new InvalidOperationException("started without TCP");

    /// <summary>SIGKILL: no chance to commit or close anything.</summary>
    public void Kill()
    {
        AppendLog("[test] kill -9");
        _process.Kill(); // SIGKILL on Linux
        _process.WaitForExit();
    }

    /// <summary>SIGTERM, then waits for the exit; returns the exit code (fails the test if it lingers).</summary>
    public int Terminate()
    {
        AppendLog("[test] SIGTERM");
        ServerLauncher.Terminate(_process);
        if (!_process.WaitForExit(StopTimeout))
        {
            _process.Kill();
            _process.WaitForExit();
            Assert.Fail($"the server did not exit within {StopTimeout.TotalSeconds} s of SIGTERM\n{this}");
        }

        _process.WaitForExit(); // drains the log
        return _process.ExitCode;
    }

    public override string ToString() => $"--- server log ---\n{Log}";

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (!_process.HasExited)
        {
            ServerLauncher.Terminate(_process);
            if (!_process.WaitForExit(StopTimeout))
            {
                _process.Kill();
            }
        }

        _process.WaitForExit();
        TestContext.Out.WriteLine($"--- server log (exit {_process.ExitCode}) ---");
        TestContext.Out.WriteLine(Log);
        _process.Dispose();
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
