using System.Diagnostics;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Durability;

/// <summary>
/// SIGTERM is a clean close: writes no client flushed (still on an open connection) are
/// committed, the store is marked clean, and a restarted server serves exactly them.
/// </summary>
public class CleanShutdownTests
{
    private const int BaseSize = 2 << 20;
    private const int Block = StoreWorkspace.Block;

    [Test]
    public void A_sigterm_while_the_server_starts_stops_it_cleanly_once_it_is_up()
    {
        // The signal is caught before the store opens: one that arrives before the listeners
        // are up must not kill the server (exit 143, store left unclean).
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.CreateInstance("early", null, "4M");
        var startInfo = Redirected.StartInfo(ServerProcess.BinaryPath, ["serve", "--store", ws.StorePath, "--listen", "unix:" + ws["early.sock"]]);

        var log = new System.Text.StringBuilder();
        using var process = new Process { StartInfo = startInfo };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (log)
            {
                log.AppendLine(e.Data);
            }

            if (e.Data.Contains("store opened", StringComparison.Ordinal))
            {
                ServerLauncher.Terminate(process);   // as soon as there is a store to close
            }
        };
        process.Start();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill();
            Assert.Fail($"the server did not stop\n{log}");
        }

        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, log.ToString);
        Assert.That(log.ToString(), Does.Contain("stopping"));
        Assert.That(ws.StoreInfo(), Does.Match(@"last shutdown:\s+clean\b"));
    }

    [Test]
    public void Sigterm_commits_unflushed_writes_of_every_instance()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed: 61);
        var baseHash = StoreWorkspace.Sha256(ws["base.raw"]);
        var payload = ws.WriteRandomFile("payload.bin", 1 << 20, seed: 62);
        ws.CreateInstance("dirty", ws["base.raw"]);
        ws.CreateInstance("zeros", null, "4M");

        var dirty = (byte[])baseImage.Clone();
        payload.AsSpan(0, 5000).CopyTo(dirty.AsSpan(1000));
        payload.AsSpan(5000, 200000).CopyTo(dirty.AsSpan((1 << 20) + 3));
        payload.AsSpan(300000, 10).CopyTo(dirty.AsSpan(BaseSize - 10));
        dirty.AsSpan(100000, 30000).Clear();            // zero, unaligned
        dirty.AsSpan(512 << 10, 64 << 10).Clear();       // trim of whole blocks over the base
        var zeros = new byte[4 << 20];
        payload.AsSpan(400000, 70000).CopyTo(zeros.AsSpan((3 << 20) + 5));

        string stopLog;
        using (var server = StoreServer.Start(ws))
        using (var client = StoreNbdsh.Start(server, $$"""
            d, z = connect("dirty"), connect("zeros")
            d.pwrite(PAYLOAD[0:5000], 1000)
            d.pwrite(PAYLOAD[5000:205000], (1 << 20) + 3)
            d.pwrite(PAYLOAD[300000:300010], {{BaseSize - 10}})
            d.zero(30000, 100000)
            d.trim(64 << 10, 512 << 10)
            z.pwrite(PAYLOAD[400000:470000], (3 << 20) + 5)
            print("written", flush=True)
            sys.stdin.readline()   # keep both connections open until the test ends
            """, ws["payload.bin"]))
        {
            client.WaitForLine("written", TimeSpan.FromSeconds(20));
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
            stopLog = server.Log;
        }

        Assert.That(stopLog, Does.Contain("stopping"));
        Assert.That(ws.StoreInfo(), Does.Match(@"last shutdown:\s+clean\b"));

        using (var server = StoreServer.Start(ws))
        {
            Assert.That(() => server.Log, Does.Contain("closed cleanly").After(5000, 20), server.ToString);
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "dirty"), dirty), Is.Null, "instance dirty after SIGTERM and a restart");
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "zeros"), zeros), Is.Null, "instance zeros after SIGTERM and a restart");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
    }

    [Test]
    public void Sigterm_during_a_stream_of_writes_keeps_every_acknowledged_one()
    {
        const int Blocks = 4096; // 16 MiB, more than the stream reaches before the signal
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.CreateInstance("busy", null, "16M");

        int acked;
        using (var server = StoreServer.Start(ws))
        using (var client = StoreNbdsh.Start(server, $$"""
            h = connect("busy")
            for i in range({{Blocks}}):
                h.pwrite(i.to_bytes(4, "little") * 1024, i * {{Block}})
                print(f"round {i}", flush=True)
            print("done", flush=True)
            sys.stdin.readline()
            """))
        {
            client.WaitForLine("round 200", TimeSpan.FromSeconds(20));
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
            acked = client.LastRound();
        }

        using (var server = StoreServer.Start(ws))
        {
            var content = ExportContent.CopyOut(server, ws, "busy");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
            var bad = new List<string>();
            var newUnacked = 0;
            for (var i = 0; i < Blocks; i++)
            {
                var got = content.AsSpan(i * Block, Block);
                var expected = new byte[Block];
                for (var j = 0; j < Block; j += 4)
                {
                    BitConverter.TryWriteBytes(expected.AsSpan(j), i);
                }

                if (got.SequenceEqual(expected))
                {
                    newUnacked += i > acked ? 1 : 0;
                }
                else if (i <= acked || got.ContainsAnyExcept((byte)0))
                {
                    bad.Add(i <= acked ? $"block {i}: acknowledged, but does not hold its write" : $"block {i}: holds neither its write nor zeros");
                }
            }

            TestContext.Out.WriteLine($"{acked + 1} writes acknowledged before SIGTERM, {newUnacked} more landed");
            Assert.That(bad, Is.Empty);
        }

        Assert.That(ws.StoreInfo(), Does.Match(@"last shutdown:\s+clean\b"));
    }
}
