using System.Diagnostics;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Config;

/// <summary>
/// <c>bin/blockoverlay serve ARGS</c> where the config, not the fixture, says where to listen:
/// the test names the unix socket it expects the server on, and the server is ready once
/// that socket accepts. It runs in a working directory of the test's choice (so relative
/// paths can be shown to follow the config, not the working directory), with
/// <c>$BLOCKOVERLAY_CONFIG</c> only when the test sets it. Standard output and standard
/// error are kept apart: the JSON log test needs stderr alone. Stopped by SIGTERM.
/// </summary>
internal sealed class ConfiguredServer : IDisposable
{
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];

    private ConfiguredServer(IEnumerable<string> args, string workingDirectory, string? configVariable)
    {
        var startInfo = Redirected.StartInfo(ServerProcess.BinaryPath, args.Prepend("serve"));
        startInfo.WorkingDirectory = workingDirectory;

        startInfo.Environment.Remove("BLOCKOVERLAY_CONFIG");
        if (configVariable is not null)
        {
            startInfo.Environment["BLOCKOVERLAY_CONFIG"] = configVariable;
        }

        _process = new Process { StartInfo = startInfo };
        _process.OutputDataReceived += (_, e) => Append(_stdout, e.Data);
        _process.ErrorDataReceived += (_, e) => Append(_stderr, e.Data);
        _process.Start();
        _process.StandardInput.Close();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public IReadOnlyList<string> StdoutLines => Snapshot(_stdout);

    public IReadOnlyList<string> StderrLines => Snapshot(_stderr);

    /// <summary>
    /// Starts the server and waits until <paramref name="socketPath"/> accepts; fails the test
    /// if the server exits first or takes too long.
    /// </summary>
    public static ConfiguredServer Start(string socketPath, IEnumerable<string> args, string workingDirectory = "/", string? configVariable = null)
    {
        var server = new ConfiguredServer(args, workingDirectory, configVariable);
        try
        {
            ServerLauncher.WaitUntilAccepting(server._process, socketPath, port: null, server.ToString, server.ToString);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>SIGTERM, then waits for the exit and the last lines; returns the exit code.</summary>
    public int Stop()
    {
        if (!_process.HasExited)
        {
            ServerLauncher.Terminate(_process);
            if (!_process.WaitForExit(StopTimeout))
            {
                _process.Kill();
                _process.WaitForExit();
                Assert.Fail($"the server did not exit within {StopTimeout.TotalSeconds} s of SIGTERM\n{this}");
            }
        }

        _process.WaitForExit(); // drains the output
        return _process.ExitCode;
    }

    public override string ToString() =>
        $"--- server stdout ---\n{string.Join('\n', StdoutLines)}\n--- server stderr ---\n{string.Join('\n', StderrLines)}";

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            ServerLauncher.Terminate(_process);
            if (!_process.WaitForExit(StopTimeout))
            {
                _process.Kill();
            }
        }

        _process.WaitForExit();
        TestContext.Out.WriteLine($"--- server (exit {_process.ExitCode}) ---");
        TestContext.Out.WriteLine(ToString());
        _process.Dispose();
    }

    private static void Append(List<string> lines, string? line)
    {
        if (line is not null)
        {
            lock (lines)
            {
                lines.Add(line);
            }
        }
    }

    private static string[] Snapshot(List<string> lines)
    {
        lock (lines)
        {
            return [.. lines];
        }
    }
}
