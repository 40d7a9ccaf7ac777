using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// Instances come and go while the server runs: the CLI reaches it through the control
/// socket next to the store, and the server never restarts for it.
/// </summary>
public class LiveInstanceTests
{
    private const int BaseSize = 1 << 20;

    [Test]
    public void An_instance_created_while_serving_is_exportable_when_create_returns_and_stat_shows_its_live_counters()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed: 71);
        using var server = StoreServer.Start(ws);

        var created = StoreWorkspace.CliOk("instance", "create", "late", "--base", ws["base.raw"], "--flush-mode", "volatile", "--store", ws.StorePath);
        Assert.That(created.Stdout, Does.Contain("created instance 'late'"));

        // No wait: exportable the moment create returned.
        var read = StoreNbdsh.Run(server, """
            h = connect("late")
            print(h.get_size())
            print(h.pread(16, 0).hex())
            h.pwrite(b"\x11" * 4096, 0)
            h.flush()
            """).Split('\n');
        Assert.That(read[0], Is.EqualTo(BaseSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(read[1], Is.EqualTo(Convert.ToHexStringLower(baseImage.AsSpan(0, 16))), "it reads as its base");

        using var stat = JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", "late", "--json", "--store", ws.StorePath).Stdout);
        var root = stat.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("served").GetBoolean(), Is.True);
            Assert.That(root.GetProperty("flushMode").GetString(), Is.EqualTo("volatile"));
            Assert.That(root.GetProperty("flushes").GetInt64(), Is.EqualTo(1), "the live counters of the served export");
            Assert.That(root.GetProperty("flushDataBytes").GetInt64(), Is.Zero, "a volatile flush writes nothing");
        });

        StoreWorkspace.CliOk("instance", "set", "late", "--flush-mode", "isolated", "--store", ws.StorePath);
        StoreNbdsh.Run(server, """
            h = connect("late")
            h.pwrite(b"\x22" * 8192, 0)
            h.flush()
            """);
        using var after = JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", "late", "--json", "--store", ws.StorePath).Stdout);
        Assert.That(after.RootElement.GetProperty("flushDataBytes").GetInt64(), Is.EqualTo(8192), "the new mode applies from the next flush");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void A_quota_set_from_the_command_line_refuses_new_space_with_enospc_and_stat_shows_its_use()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws);
        StoreWorkspace.CliOk("instance", "create", "small", "--size", "4M", "--quota", "64K", "--store", ws.StorePath);

        // 64 KiB fit (half flushed, half dirty); one more block of new space does not, a rewrite does.
        var written = StoreNbdsh.Run(server, """
            h = connect("small")
            h.pwrite(b"\x11" * 32768, 0)
            h.flush()
            h.pwrite(b"\x22" * 32768, 32768)
            try:
                h.pwrite(b"\x33" * 4096, 1 << 20)
                print("accepted")
            except nbd.Error as e:
                print(e.errno)  # libnbd gives the errno's name
            h.pwrite(b"\x44" * 4096, 0)
            print(h.pread(1, 1 << 20).hex())
            """).Split('\n');
        Assert.That(written[0], Is.EqualTo("ENOSPC"), "past the quota");
        Assert.That(written[1], Is.EqualTo("00"), "the refused write changed nothing");

        using (var stat = JsonDocument.Parse(StoreWorkspace.CliOk("instance", "stat", "small", "--json", "--store", ws.StorePath).Stdout))
        {
            Assert.That(stat.RootElement.GetProperty("quota").GetInt64(), Is.EqualTo(65536));
            Assert.That(stat.RootElement.GetProperty("quotaUsedBytes").GetInt64(), Is.EqualTo(65536), "upper and dirty new space together");
        }

        StoreWorkspace.CliOk("instance", "set", "small", "--quota", "none", "--store", ws.StorePath);
        StoreNbdsh.Run(server, """
            h = connect("small")
            h.pwrite(b"\x33" * 4096, 1 << 20)
            h.flush()
            """);
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void Delete_refuses_while_a_client_is_attached_and_force_disconnects_it_after_its_data_is_written_back()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.CreateInstance("busy", null, "8M");
        ws.CreateInstance("other", null, "8M");
        using var server = StoreServer.Start(ws);
        using var client = StoreNbdsh.Start(server, """
            h = connect("busy")
            h.pwrite(b"\x33" * 65536, 0)
            print("written", flush=True)
            sys.stdin.readline()
            """);
        client.WaitForLine("written", TimeSpan.FromSeconds(20));

        var refused = StoreWorkspace.Cli("instance", "delete", "busy", "--store", ws.StorePath);
        Assert.That(refused.ExitCode, Is.Not.Zero);
        Assert.That(refused.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), refused.ToString);
        Assert.That(refused.Stderr, Does.Contain("1 connection").And.Contain("--force"));
        Assert.That(ws.ListInstances().Select(r => r[0]), Is.EquivalentTo(new[] { "busy", "other" }), "a refused delete changes nothing");

        StoreWorkspace.CliOk("instance", "delete", "busy", "--force", "--store", ws.StorePath);
        Assert.That(ws.ListInstances().Select(r => r[0]), Is.EquivalentTo(new[] { "other" }));
        var list = ClientTool.Nbdinfo.Run("--list", server.UnixUri(""));
        Assert.That(list.Stdout, Does.Not.Contain("export=\"busy\"").And.Contain("export=\"other\""), list.ToString);
        Assert.That(() => server.Log, Does.Contain("no longer served (1 connection(s)").After(5000, 20));

        // Its space is reusable: a new instance of the same name starts as zeros.
        StoreWorkspace.CliOk("instance", "create", "busy", "--size", "8M", "--store", ws.StorePath);
        var fresh = StoreNbdsh.Run(server, """
            print(connect("busy").pread(65536, 0) == bytes(65536))
            """);
        Assert.That(fresh.Trim(), Is.EqualTo("True"), "a re-created instance does not see the deleted one's data");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void Concurrent_creates_each_succeed_once_and_a_duplicate_name_fails_with_one_line()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        using var server = StoreServer.Start(ws);
        string[] names = ["c0", "c1", "c2", "c3", "c4", "c5", "c2", "c4"];
        var results = names.AsParallel().WithDegreeOfParallelism(names.Length)
            .Select(name => (name, result: StoreWorkspace.Cli("instance", "create", name, "--size", "4M", "--store", ws.StorePath)))
            .ToList();

        Assert.Multiple(() =>
        {
            Assert.That(results.Count(r => r.result.ExitCode == 0), Is.EqualTo(6), "one success per distinct name");
            foreach (var (name, result) in results.Where(r => r.result.ExitCode != 0))
            {
                Assert.That(result.Stderr, Does.Contain($"'{name}' already exists"), result.ToString);
            }

            Assert.That(ws.ListInstances().Select(r => r[0]), Is.EquivalentTo(new[] { "c0", "c1", "c2", "c3", "c4", "c5" }));
        });
        var list = ClientTool.Nbdinfo.Run("--list", server.UnixUri(""));
        Assert.That(names.Distinct().All(n => list.Stdout.Contains($"export=\"{n}\"", StringComparison.Ordinal)), Is.True, list.ToString);
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void Bad_live_requests_get_one_line_errors_and_leave_the_server_serving()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.CreateInstance("kept", null, "4M");
        using var server = StoreServer.Start(ws);
        foreach (var (args, expected) in new (string[] Args, string Expected)[]
        {
            (["instance", "create", "kept", "--size", "4M"], "already exists"),
            (["instance", "create", "bad/name", "--size", "4M"], "cannot be an instance name"),
            (["instance", "create", "nosize"], "--base IMAGE, or --size SIZE"),
            (["instance", "create", "x", "--size", "12 parsecs"], "size"),
            (["instance", "create", "x", "--base", "/nonexistent/base.raw"], "/nonexistent/base.raw"),
            (["instance", "create", "x", "--size", "4M", "--flush-mode", "sometimes"], "not a flush mode"),
            (["instance", "delete", "ghost"], "no instance named 'ghost'"),
            (["instance", "stat", "ghost"], "no instance named 'ghost'"),
            (["instance", "set", "ghost", "--flush-mode", "global"], "no instance named 'ghost'"),
        })
        {
            var result = StoreWorkspace.Cli([.. args, "--store", ws.StorePath]);
            Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
            Assert.That(result.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), result.ToString);
            Assert.That(result.Stderr, Does.StartWith($"blockoverlay {args[0]} {args[1]}: ").And.Contain(expected), result.ToString);
        }

        Assert.That(ws.ListInstances().Select(r => r[0]), Is.EquivalentTo(new[] { "kept" }), "nothing half-created");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }
}
