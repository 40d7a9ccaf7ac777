using System.Globalization;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// Per-instance access through the real server and libnbd's tools: an instance with rules is
/// listed and opened only by the clients they name; everyone else is told it does not exist.
/// Our own uid is the one we can test directly; as root, a client run as nobody shows another
/// user's view.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class AccessTests
{
    private static uint OwnUid => uint.Parse(Tool.Run("/usr/bin/id", ["-u"], TimeSpan.FromSeconds(10)).Stdout.Trim(), CultureInfo.InvariantCulture);

    [Test]
    public void An_instance_allowed_to_another_user_or_group_is_not_listed_and_not_opened_while_ours_is()
    {
        uint uid = OwnUid;
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws, tcp: true);
        Create(ws, "mine", "--allow", $"uid:{uid}");
        Create(ws, "theirs", "--allow", $"uid:{uid + 4242}");
        Create(ws, "locked", "--allow", "gid:54321"); // a group this test does not run in
        Create(ws, "signed", "--allow", "cert:CN=tenant-a"); // no TLS on this server: nobody presents a certificate
        Create(ws, "open");

        Assert.That(File.GetUnixFileMode(server.SocketPath),
            Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite), "0660, not the umask's");
        Assert.That(Listed(server, server.UnixUri("")), Is.EquivalentTo(new[] { "mine", "open" }));
        Assert.That(Listed(server, server.TcpUri("")), Is.EquivalentTo(new[] { "open" }), "a TCP client has no uid");
        var missing = ClientTool.Nbdinfo.Run(server.UnixUri("nosuch"));
        Assert.That(missing.Stderr, Does.Contain("No such file or directory for export: nosuch"), missing.ToString);
        foreach (var hidden in new[] { "theirs", "locked", "signed" })
        {
            var refused = ClientTool.Nbdinfo.Run(server.UnixUri(hidden));
            Assert.That((refused.ExitCode, refused.Stderr.Replace(hidden, "nosuch", StringComparison.Ordinal)), Is.EqualTo((missing.ExitCode, missing.Stderr)),
                "answered as for a name that does not exist");
        }

        var mine = StoreNbdsh.Run(server, """
            h = connect("mine")
            h.pwrite(b"\x5a" * 4096, 0)
            print(h.pread(4, 0).hex())
            """);
        Assert.That(mine.Trim(), Is.EqualTo("5a5a5a5a"));

        StoreWorkspace.CliOk("instance", "set", "theirs", "--allow", $"uid:{uid}", "--allow", "gid:54321", "--store", ws.StorePath);
        StoreWorkspace.CliOk("instance", "set", "mine", "--allow-all", "--store", ws.StorePath);
        Assert.That(Listed(server, server.UnixUri("")), Is.EquivalentTo(new[] { "mine", "theirs", "open" }), "set applies to the next client");
        Assert.That(Listed(server, server.TcpUri("")), Is.EquivalentTo(new[] { "mine", "open" }));
        using var stat = JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", "theirs", "--json", "--store", ws.StorePath).Stdout);
        Assert.That(stat.RootElement.GetProperty("allow").EnumerateArray().Select(e => e.GetString()), Is.EqualTo(new[] { $"uid:{uid}", "gid:54321" }));
        Assert.That(server.Terminate(), Is.Zero, server.ToString);

        // Stored with the instance: the next server (after a clean close's checkpoint) keeps them.
        Assert.That(StoreWorkspace.CliOk("store", "check", ws.StorePath).ExitCode, Is.Zero);
        using var again = StoreServer.Start(ws);
        Assert.That(Listed(again, again.UnixUri("")), Is.EquivalentTo(new[] { "mine", "theirs", "open" }));
    }

    [Test]
    public void Revoking_a_clients_access_closes_its_open_connections_to_that_instance_and_no_other()
    {
        uint uid = OwnUid;
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws);
        Create(ws, "mine", "--allow", $"uid:{uid}");
        Create(ws, "other", "--allow", $"uid:{uid}");
        const string Reader = """
            import time
            h = connect(EXPORT)
            h.pread(512, 0)
            print("attached", flush=True)
            try:
                for i in range(400):
                    h.pread(512, 0)
                    time.sleep(0.05)
                print("still open", flush=True)
            except nbd.Error as e:
                print("closed", flush=True)
            """;
        using var revoked = StoreNbdsh.Start(server, "EXPORT = 'mine'\n" + Reader);
        using var kept = StoreNbdsh.Start(server, "EXPORT = 'other'\n" + Reader);
        revoked.WaitForLine("attached", TimeSpan.FromSeconds(15));
        kept.WaitForLine("attached", TimeSpan.FromSeconds(15));

        // Still allowed (a rule added): nothing happens to the connection.
        StoreWorkspace.CliOk("instance", "set", "mine", "--allow", $"uid:{uid}", "--allow", "gid:54321", "--store", ws.StorePath);
        StoreWorkspace.CliOk("instance", "set", "mine", "--allow", $"uid:{uid + 4242}", "--store", ws.StorePath);
        revoked.WaitForLine("closed", TimeSpan.FromSeconds(10));
        Assert.That(server.Log, Does.Contain("instance 'mine': access rules changed; 1 open connection(s) they no longer allow are being closed"));
        Assert.That(server.Log, Does.Contain("access rules of 'mine' changed and no longer allow"));
        kept.WaitForLine("still open", TimeSpan.FromSeconds(40));
    }

    [Test]
    public void The_socket_mode_is_the_operators_choice_and_a_world_open_socket_is_logged()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using (var server = StoreServer.Start(ws, tcp: false, "--socket-mode", "0600"))
        {
            Assert.That(File.GetUnixFileMode(server.SocketPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(server.Log, Does.Not.Contain("every local user may connect"));
        }

        using (var open = StoreServer.Start(ws, tcp: false, "--socket-mode", "666"))
        {
            Assert.That(File.GetUnixFileMode(open.SocketPath), Is.EqualTo(
                UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite));
            Assert.That(open.Log, Does.Contain("is mode 0666: every local user may connect"));
        }

        var refused = StoreWorkspace.Cli("serve", "--store", ws.StorePath, "--listen", "unix:" + Path.Combine(ws.Path, "x.sock"), "--socket-mode", "0777");
        Assert.That(refused.ExitCode, Is.EqualTo(1), refused.ToString);
        Assert.That(refused.Stderr, Does.Contain("--socket-mode: 0777: a socket takes only read and write bits (at most 0666)"));
    }

    [Test]
    public void An_instance_allowed_to_a_certificate_subject_is_seen_over_tls_with_that_certificate_only()
    {
        using var pki = new TestPki();
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws, tcp: false, pki.ServeOptions("on", verifyClients: true));
        Create(ws, "signed", "--allow", $"cert:{TestPki.ClientSubject}");
        Create(ws, "others", "--allow", "cert:CN=tenant-b, O=Example");
        Create(ws, "open");
        string tls = $"nbds+unix:///?socket={server.SocketPath}&tls-certificates={pki.Trusted}";

        Assert.That(Listed(server, server.UnixUri("")), Is.EquivalentTo(new[] { "open" }), "without TLS no subject: our uid is not named");
        Assert.That(Listed(server, tls), Is.EquivalentTo(new[] { "signed", "open" }));
        var size = ClientTool.Nbdinfo.Run("--size", tls.Replace("///?", "///signed?", StringComparison.Ordinal));
        Assert.That((size.ExitCode, size.Stdout.Trim()), Is.EqualTo((0, "1048576")), size.ToString);
        var refused = ClientTool.Nbdinfo.Run("--size", tls.Replace("///?", "///others?", StringComparison.Ordinal));
        Assert.That((refused.ExitCode, refused.Stderr), Is.EqualTo((1, "/usr/bin/nbdinfo: nbd_connect_uri: handshake: server has no export named 'others': No such file or directory\n")), refused.ToString);
    }

    [Test]
    public void As_root_a_client_running_as_nobody_sees_and_opens_only_what_nobody_is_allowed()
    {
        if (OwnUid != 0)
        {
            Assert.Ignore("needs root, to run a client as another user (setpriv)");
        }

        const uint Nobody = 65534;
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws);
        Create(ws, "roots", "--allow", "uid:0");
        Create(ws, "nobodys", "--allow", $"uid:{Nobody}");
        Create(ws, "open");
        StoreNbdsh.Run(server, """
            h = connect("roots")
            h.pwrite(b"secret" * 16, 0)
            h.flush()
            """);

        // Let nobody reach the socket (the server made it 0660, root's): the rules are what stand in the way now.
        File.SetUnixFileMode(server.SocketPath, File.GetUnixFileMode(server.SocketPath) | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        File.SetUnixFileMode(ws.Path, File.GetUnixFileMode(ws.Path) | UnixFileMode.OtherExecute);

        var listed = AsNobody("nbdinfo", "--list", "--json", server.UnixUri(""));
        Assert.That(listed.ExitCode, Is.Zero, listed.ToString);
        using (var list = JsonDocument.Parse(listed.Stdout))
        {
            Assert.That(Names(list), Is.EquivalentTo(new[] { "nobodys", "open" }));
        }

        var refused = AsNobody("nbdinfo", server.UnixUri("roots"));
        Assert.That((refused.ExitCode, refused.Stderr.Contains("No such file or directory for export: roots", StringComparison.Ordinal)),
            Is.EqualTo((1, true)), refused.ToString);
        var read = AsNobody("nbdcopy", server.UnixUri("roots"), "-");
        Assert.That(read.ExitCode, Is.Not.Zero, read.ToString);
        Assert.That(read.Stdout, Does.Not.Contain("secret"));

        var own = AsNobody("nbdsh", "-u", server.UnixUri("nobodys"), "-c", "h.pwrite(b'n' * 512, 0); print(h.pread(1, 0).hex())");
        Assert.That((own.ExitCode, own.Stdout.Trim()), Is.EqualTo((0, "6e")), own.ToString);
        Assert.That(Listed(server, server.UnixUri("")), Is.EquivalentTo(new[] { "roots", "open" }), "and root does not see nobody's");
    }

    private static void Create(StoreWorkspace ws, string name, params string[] rules) =>
        StoreWorkspace.CliOk(["instance", "create", name, "--size", "1M", .. rules, "--store", ws.StorePath]);

    private static string[] Listed(StoreServer server, string uri)
    {
        var result = ClientTool.Nbdinfo.Run("--list", "--json", uri);
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        using var list = JsonDocument.Parse(result.Stdout);
        return Names(list);
    }

    private static string[] Names(JsonDocument list) =>
        [.. list.RootElement.GetProperty("exports").EnumerateArray().Select(e => e.GetProperty("export-name").GetString()!)];

    /// <summary>Runs a libnbd tool as nobody:nogroup with no supplementary groups (util-linux setpriv).</summary>
    private static ToolResult AsNobody(string tool, params string[] args) =>
        Tool.Run("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", tool, .. args], TimeSpan.FromSeconds(30));
}
