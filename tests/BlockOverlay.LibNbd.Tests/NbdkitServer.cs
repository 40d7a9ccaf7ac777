using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BlockOverlay.LibNbd.Tests;

/// <summary>An nbdkit process in the foreground with its own temporary directory. Ready
/// once nbdkit has written its pid file, which it does only after it listens. Its stderr
/// is kept: nbdkit logs every request it rejects there, which proves what reached it.</summary>
internal sealed class NbdkitServer : IDisposable
{
    private readonly Process process;
    private readonly StringBuilder stderr = new();

    private NbdkitServer(string directory, IEnumerable<string> listenArgs, IEnumerable<string> pluginArgs)
    {
        Directory = directory;
        var startInfo = new ProcessStartInfo(NbdkitPath())
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-f", "--exit-with-parent", "-P", PidFile }.Concat(listenArgs).Concat(pluginArgs))
        {
            startInfo.ArgumentList.Add(arg);
        }

        process = new Process { StartInfo = startInfo };
        process.ErrorDataReceived += (_, e) =>
        {
            lock (stderr)
            {
                stderr.AppendLine(e.Data);
            }
        };
        process.Start();
        process.BeginErrorReadLine();
        WaitUntilListening();
    }

    public string Directory { get; }

    public string SocketPath => Path.Combine(Directory, "nbd.sock");

    public string UnixUri => $"nbd+unix:///?socket={SocketPath}";

    public int Port { get; private init; }

    public string Stderr
    {
        get
        {
            lock (stderr)
            {
                return stderr.ToString();
            }
        }
    }

    private string PidFile => Path.Combine(Directory, "nbdkit.pid");

    /// <summary>nbdkit serving on a unix socket, e.g. StartUnix("memory", "64M").</summary>
    public static NbdkitServer StartUnix(params string[] pluginArgs)
    {
        var directory = CreateTempDirectory();
        return new NbdkitServer(directory, ["-U", Path.Combine(directory, "nbd.sock")], pluginArgs);
    }

    /// <summary>nbdkit on 127.0.0.1 and a port that was free a moment ago; another process
    /// may take the port in between, so a failed start is retried on a new port.</summary>
    public static NbdkitServer StartTcp(params string[] pluginArgs)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeTcpPort();
            var portText = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            try
            {
                return new NbdkitServer(CreateTempDirectory(), ["-i", "127.0.0.1", "-p", portText], pluginArgs) { Port = port };
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                // nbdkit could not bind: the port was taken meanwhile; try another.
            }
        }
    }

    /// <summary>Ignores the calling test (or fixture) when nbdkit is not installed.</summary>
    public static string NbdkitPath()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin")
            .Split(':')
            .Select(dir => Path.Combine(dir, "nbdkit"))
            .FirstOrDefault(File.Exists);
        if (path is null)
        {
            Assert.Ignore("nbdkit is not installed; `make deps` installs it");
        }

        return path!;
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            process.Kill();
        }

        process.WaitForExit();
        process.Dispose();
        System.IO.Directory.Delete(Directory, recursive: true);
    }

    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static string CreateTempDirectory() =>
        System.IO.Directory.CreateTempSubdirectory("blockoverlay-libnbd-").FullName;

    private void WaitUntilListening()
    {
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(PidFile))
        {
            if (process.HasExited || deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                var reason = process.HasExited ? $"exited with {process.ExitCode}" : "did not start in 10 s";
                Dispose();
                throw new InvalidOperationException($"nbdkit {reason}: {Stderr}");
            }

            Thread.Sleep(10);
        }
    }
}
