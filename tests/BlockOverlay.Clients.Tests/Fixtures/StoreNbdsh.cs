using System.Diagnostics;
using System.Text;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// Python run by nbdsh against a <see cref="StoreServer"/>, in the foreground (to the end)
/// or in the background (the test reads its lines and ends it). Scripts have
/// <c>connect(export)</c> (a handle over the server's unix socket) and
/// <c>PAYLOAD</c> (the bytes of the payload file given, or empty).
/// </summary>
internal sealed class StoreNbdsh : IDisposable
{
    private const string Helpers = """
        import json
        import sys
        import nbd

        def connect(export):
            handle = nbd.NBD()
            handle.connect_uri(f"nbd+unix:///{export}?socket={SOCKET}")
            return handle

        PAYLOAD = open(PAYLOAD_PATH, "rb").read() if PAYLOAD_PATH else b""
        """;

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly List<string> _lines = [];

    private StoreNbdsh(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_lines)
                {
                    _lines.Add(e.Data);
                    Monitor.PulseAll(_lines);
                }
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(e.Data);
                }
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Runs <paramref name="script"/> to the end; fails the test unless it exits 0; returns stdout.</summary>
    public static string Run(StoreServer server, string script, string? payloadPath = null, TimeSpan? timeout = null)
    {
        var result = ClientTool.Nbdsh.Run(Arguments(server, script, payloadPath), timeout ?? TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"the nbdsh script failed\n{result}\n{server}");
        return result.Stdout;
    }

    /// <summary>Starts <paramref name="script"/> in the background; its stdin stays open until disposed.</summary>
    public static StoreNbdsh Start(StoreServer server, string script, string? payloadPath = null)
    {
        var startInfo = Redirected.StartInfo(ClientTool.Nbdsh.Path, Arguments(server, script, payloadPath));

        startInfo.Environment["PATH"] = Tool.SystemPath;
        return new StoreNbdsh(Process.Start(startInfo) ?? throw new InvalidOperationException("could not start nbdsh"));
    }

    /// <summary>Waits until the script prints <paramref name="line"/>; fails the test if it exits or takes too long first.</summary>
    public void WaitForLine(string line, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        lock (_lines)
        {
            while (!_lines.Contains(line))
            {
                if (_process.HasExited || clock.Elapsed > timeout)
                {
                    Assert.Fail($"nbdsh did not print '{line}' (exited: {_process.HasExited})\n--- stdout ---\n" +
                        $"{string.Join('\n', _lines)}\n--- stderr ---\n{Stderr}");
                }

                Monitor.Wait(_lines, TimeSpan.FromMilliseconds(50));
            }
        }
    }

    /// <summary>The highest N of the lines <c>round N</c> printed so far, or -1.</summary>
    public int LastRound()
    {
        lock (_lines)
        {
            return _lines.Where(l => l.StartsWith("round ", StringComparison.Ordinal))
                .Select(l => int.Parse(l.AsSpan(6), System.Globalization.CultureInfo.InvariantCulture))
                .DefaultIfEmpty(-1)
                .Max();
        }
    }

    private string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }

        _process.WaitForExit();
        _process.Dispose();
    }

    private static string[] Arguments(StoreServer server, string script, string? payloadPath) =>
    [
        "-n",
        "-c", $"SOCKET = {JsonSerializer.Serialize(server.SocketPath)}\nPAYLOAD_PATH = {JsonSerializer.Serialize(payloadPath ?? "")}",
        "-c", Helpers,
        "-c", script,
    ];
}
