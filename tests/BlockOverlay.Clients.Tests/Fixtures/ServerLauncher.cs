using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// What every fixture that runs bin/blockoverlay as a process needs: a free loopback port,
/// waiting until the server accepts (or saying why it never will), and SIGTERM.
/// </summary>
internal static partial class ServerLauncher
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(15);

    /// <summary>The server exited because its port was taken meanwhile: try another port.</summary>
    public sealed class AddressInUseException : Exception;

    /// <summary>
    /// Launches a server (with a free loopback port when <paramref name="tcp"/>) and waits until
    /// it accepts. A port is free when probed but another process may take it before the server
    /// binds; that shows as a server that exits at once, so a few ports are tried.
    /// </summary>
    public static T Start<T>(bool tcp, Func<int?, T> launch, Action<T> waitUntilAccepting) where T : IDisposable
    {
        const int Attempts = 3;
        for (var attempt = 1; ; attempt++)
        {
            var server = launch(tcp ? FreeLoopbackPort() : null);
            try
            {
                waitUntilAccepting(server);
                return server;
            }
            catch (AddressInUseException) when (attempt < Attempts)
            {
                server.Dispose();
            }
            catch
            {
                server.Dispose();
                throw;
            }
        }
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>
    /// Waits until the server accepts on its unix socket (and its TCP port, if any). Fails the
    /// test, with <paramref name="describe"/>'s text, if it exits or takes too long.
    /// </summary>
    public static void WaitUntilAccepting(Process process, string socketPath, int? port, Func<string> log, Func<string> describe)
    {
        var clock = Stopwatch.StartNew();
        while (!Accepts(new UnixDomainSocketEndPoint(socketPath), AddressFamily.Unix, ProtocolType.Unspecified)
            || (port is { } p && !Accepts(new IPEndPoint(IPAddress.Loopback, p), AddressFamily.InterNetwork, ProtocolType.Tcp)))
        {
            if (process.HasExited)
            {
                process.WaitForExit();
                if (port is not null && log().Contains("already in use", StringComparison.OrdinalIgnoreCase))
                {
                    throw new AddressInUseException();
                }

                Assert.Fail($"the server exited with {process.ExitCode} before accepting connections\n{describe()}");
            }

            if (clock.Elapsed > StartTimeout)
            {
                Assert.Fail($"the server did not accept connections within {StartTimeout.TotalSeconds} s\n{describe()}");
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>Asks the server to shut down cleanly.</summary>
    public static void Terminate(Process process)
    {
        const int Sigterm = 15;
        _ = kill(process.Id, Sigterm);
    }

    /// <summary>SIGSTOP (<paramref name="pause"/>) or SIGCONT: a server frozen, as a hung or cut-off host is, and thawed.</summary>
    public static void Pause(Process process, bool pause)
    {
        const int Sigstop = 19;
        const int Sigcont = 18;
        _ = kill(process.Id, pause ? Sigstop : Sigcont);
    }

    private static bool Accepts(EndPoint endPoint, AddressFamily family, ProtocolType protocol)
    {
        using var socket = new Socket(family, SocketType.Stream, protocol);
        try
        {
            socket.Connect(endPoint);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);
}
