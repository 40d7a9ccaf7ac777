using System.Text.Json;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// Python run by nbdsh (libnbd's own bindings) against a <see cref="ServerProcess"/>.
/// Scripts check bytes with <c>assert</c>, whose message lands in the test failure, and
/// print JSON for the test to inspect. These names are defined for them:
/// <list type="bullet">
/// <item><c>connect(export)</c>: a new handle on the export over the server's unix socket,
/// with <c>base:allocation</c> requested;</item>
/// <item><c>extents(h, length, offset)</c>: block status as a list of <c>[length, flags]</c>;</item>
/// <item><c>pattern(byte, length)</c>: <paramref name="length"/> copies of one byte.</item>
/// </list>
/// </summary>
internal static class NbdshScript
{
    private const string Helpers = """
        import json
        import nbd

        def connect(export):
            handle = nbd.NBD()
            handle.add_meta_context("base:allocation")
            handle.connect_uri(f"nbd+unix:///{export}?socket={SOCKET}")
            return handle

        def extents(handle, length, offset):
            found = []
            def collect(metacontext, at, entries, err):
                if metacontext == "base:allocation":
                    found.extend([entries[i], entries[i + 1]] for i in range(0, len(entries), 2))
                return 0
            handle.block_status(length, offset, collect)
            return found

        def pattern(byte, length):
            return bytes([byte]) * length
        """;

    /// <summary>Runs <paramref name="script"/>, fails the test unless it exits 0, and returns its stdout.</summary>
    public static string Run(ServerProcess server, string script, TimeSpan? timeout = null) =>
        Run(server.SocketPath, script, server.ToString, timeout);

    /// <summary>Runs <paramref name="script"/> with no server; it connects by itself (e.g. connect_command).</summary>
    public static string RunStandalone(string script, TimeSpan? timeout = null) =>
        Run("", script, () => "", timeout);

    private static string Run(string socketPath, string script, Func<string> context, TimeSpan? timeout)
    {
        var result = ClientTool.Nbdsh.Run(
            ["-n", "-c", $"SOCKET = {JsonSerializer.Serialize(socketPath)}", "-c", Helpers, "-c", script],
            timeout ?? TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"the nbdsh script failed\n{result}\n{context()}");
        return result.Stdout;
    }
}
