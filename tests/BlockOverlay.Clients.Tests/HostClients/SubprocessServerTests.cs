using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// The server started by the client itself: libnbd's <c>nbd_connect_command</c> talks to
/// it over stdin/stdout (<c>--stdio</c>), and nbdinfo's <c>[ CMD ]</c> form hands it a
/// listening socket by systemd socket activation (LISTEN_FDS), so no --listen is given.
/// </summary>
public class SubprocessServerTests
{
    [Test]
    public void Connect_command_with_stdio_serves_one_client_round_trip()
    {
        var command = JsonSerializer.Serialize(new[] { ServerProcess.BinaryPath, "serve", "--stdio", "--export", "d=memory:1M" });

        var output = NbdshScript.RunStandalone($$"""
            h = nbd.NBD()
            h.set_export_name("d")
            h.add_meta_context("base:allocation")
            h.connect_command({{command}})
            h.pwrite(b"over a pipe", 1000)
            h.flush()
            print(json.dumps({"size": h.get_size(), "read": h.pread(11, 1000).decode(), "around": h.pread(1000, 0).hex().strip("0")}))
            h.shutdown()
            """);

        using var json = JsonDocument.Parse(output);
        Assert.Multiple(() =>
        {
            Assert.That(json.RootElement.GetProperty("size").GetInt64(), Is.EqualTo(1 << 20));
            Assert.That(json.RootElement.GetProperty("read").GetString(), Is.EqualTo("over a pipe"));
            Assert.That(json.RootElement.GetProperty("around").GetString(), Is.Empty, "bytes before the write are zero");
        });
    }

    /// <summary>
    /// As inetd starts a server: the connected socket on standard input only, standard output
    /// elsewhere (here /dev/null). The server must talk over the socket both ways.
    /// </summary>
    [Test]
    public void Stdio_with_a_socket_on_standard_input_only_replies_over_that_socket()
    {
        var command = JsonSerializer.Serialize(new[] { ServerProcess.BinaryPath, "serve", "--stdio", "--export", "d=memory:1M" });

        var output = NbdshScript.RunStandalone($$"""
            import socket, subprocess
            ours, theirs = socket.socketpair()
            server = subprocess.Popen({{command}}, stdin=theirs, stdout=subprocess.DEVNULL)
            theirs.close()
            h = nbd.NBD()
            h.set_export_name("d")
            h.connect_socket(ours.fileno())
            h.pwrite(b"inetd style", 4096)
            print(json.dumps({"size": h.get_size(), "read": h.pread(11, 4096).decode()}))
            h.shutdown()
            print(json.dumps({"exit": server.wait(timeout=30)}))
            """);

        var lines = output.Trim().Split('\n');
        using var session = JsonDocument.Parse(lines[0]);
        using var end = JsonDocument.Parse(lines[1]);
        Assert.Multiple(() =>
        {
            Assert.That(session.RootElement.GetProperty("size").GetInt64(), Is.EqualTo(1 << 20));
            Assert.That(session.RootElement.GetProperty("read").GetString(), Is.EqualTo("inetd style"));
            Assert.That(end.RootElement.GetProperty("exit").GetInt32(), Is.Zero, "the server ends with its one client");
        });
    }

    [Test]
    public void Nbdinfo_command_form_starts_the_server_by_socket_activation()
    {
        var result = ClientTool.Nbdinfo.Run("--json", "--", "[", ServerProcess.BinaryPath, "serve", "--export", "d=memory:1M", "]");

        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        using var json = JsonDocument.Parse(result.Stdout);
        var export = json.RootElement.GetProperty("exports")[0];
        Assert.Multiple(() =>
        {
            Assert.That(export.GetProperty("export-name").GetString(), Is.EqualTo("d"));
            Assert.That(export.GetProperty("export-size").GetInt64(), Is.EqualTo(1 << 20));
            Assert.That(export.GetProperty("can_multi_conn").GetBoolean(), Is.True);
        });
    }
}
