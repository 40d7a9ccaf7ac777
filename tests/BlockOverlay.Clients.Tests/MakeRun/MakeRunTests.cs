using System.Globalization;
using System.Net;
using System.Net.Sockets;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.MakeRun;

/// <summary>
/// <c>make run</c> itself, as the README's first command: on a directory with no var/ it
/// makes the demo (an ext4 base image, a store, instances demo1 and demo2 over the base),
/// serves both on a unix socket and TCP, prints URIs and commands that work when pasted,
/// stops cleanly on Ctrl-C, and a second run serves the same store (the first run's write
/// is still there) without making anything again.
/// </summary>
/// <remarks>
/// The TCP port is the default 10809 when it is free, so the defaults are what is tested.
/// When something else on the machine holds 10809 (a developer's own <c>make run</c>), the
/// test moves only TCP to a free port through <c>RUN_ARGS</c>, says so in its output, and
/// tests the rest the same; it never fails for a port it does not own.
/// </remarks>
public class MakeRunTests
{
    private const int DefaultPort = 10809;
    private const long DemoDiskBytes = 64L << 20;

    /// <summary>Past the base's files in the image, so the write lands where the base reads as zeros.</summary>
    private const long MarkerOffset = 32L << 20;

    private const long MarkerBytes = 4096;

    /// <summary>The blockoverlay:layer value of a range served from the base image.</summary>
    private const int BaseLayer = 2;

    /// <summary>The blockoverlay:layer value of a range the instance wrote itself.</summary>
    private const int UpperLayer = 1;

    private static readonly string[] s_instances = ["demo1", "demo2"];

    [Test]
    public void Make_run_makes_and_serves_the_demo_stops_on_ctrl_c_and_the_next_run_reuses_it()
    {
        using var scratch = new ScratchDirectory();
        var (makeArgs, port) = ChooseTcpPort();
        string baseImage = scratch["var/demo-base.ext4"];
        string store = scratch["var/store"];

        DateTime baseWritten;
        using (var first = MakeRunProcess.Start(scratch.Path, makeArgs, s_instances))
        {
            Assert.That(first.Lines, Has.Some.StartsWith("demo: creating the store"), first.ToString);
            foreach (string instance in s_instances)
            {
                CheckServedFromBase(first, scratch.Path, instance, port);
            }

            CheckPastedHintsWork(first);
            WriteMarker(first.Hint("demo1", $"nbd://127.0.0.1:{port}/"));
            Assert.Multiple(() =>
            {
                Assert.That(LayerMap(first.Hint("demo1", "nbd+unix:")), Has.Some.EqualTo((MarkerOffset, MarkerBytes, UpperLayer)));
                Assert.That(LayerMap(first.Hint("demo2", "nbd+unix:")).Select(e => e.Layer), Is.All.EqualTo(BaseLayer), "demo2 does not see demo1's write");
            });
            baseWritten = File.GetLastWriteTimeUtc(baseImage);
            Assert.That(first.Interrupt(), Is.Zero, first.ToString);
        }

        string storeId = CheckShutDownCleanly(store);

        using (var second = MakeRunProcess.Start(scratch.Path, makeArgs, s_instances))
        {
            Assert.Multiple(() =>
            {
                Assert.That(second.Lines, Has.Some.StartsWith("demo: serving the existing store"), second.ToString);
                Assert.That(second.Lines, Has.None.StartsWith("demo: creating"), second.ToString);
            });
            var read = ClientTool.QemuIo.Run("-f", "raw", second.Hint("demo1", "nbd+unix:"), "-c", $"read -P 0x5a {MarkerOffset} {MarkerBytes}");
            Assert.That(read.ExitCode, Is.Zero, $"demo1 still holds the first run's write\n{read}");
            Assert.That(second.Interrupt(), Is.Zero, second.ToString);
        }

        Assert.Multiple(() =>
        {
            Assert.That(File.GetLastWriteTimeUtc(baseImage), Is.EqualTo(baseWritten), "the base image was not made again");
            Assert.That(CheckShutDownCleanly(store), Is.EqualTo(storeId), "the store was not made again");
        });
    }

    /// <summary>Both URIs answer; the disk is the 64 MiB base, every byte of it still from the base.</summary>
    private static void CheckServedFromBase(MakeRunProcess run, string directory, string instance, int port)
    {
        string unix = run.Hint(instance, "nbd+unix:");
        string tcp = run.Hint(instance, "nbd://");
        Assert.Multiple(() =>
        {
            Assert.That(unix, Is.EqualTo($"nbd+unix:///{instance}?socket={Path.Combine(directory, "var", "blockoverlay.sock")}"));
            Assert.That(tcp, Is.EqualTo(string.Create(CultureInfo.InvariantCulture, $"nbd://127.0.0.1:{port}/{instance}")));
            Assert.That(Size(unix), Is.EqualTo(DemoDiskBytes));
            Assert.That(Size(tcp), Is.EqualTo(DemoDiskBytes));
            Assert.That(LayerMap(unix).Select(e => e.Layer), Is.All.EqualTo(BaseLayer), $"{instance} is all base before any write");
        });
    }

    /// <summary>
    /// The printed nbdinfo and qemu-io lines, run by a shell exactly as printed: nbdinfo's map
    /// shows the base's files as data, and qemu-io reads.
    /// </summary>
    private static void CheckPastedHintsWork(MakeRunProcess run)
    {
        var map = Tool.Run("/bin/bash", ["-c", run.Hint("demo1", "nbdinfo ")], TimeSpan.FromSeconds(30));
        var read = Tool.Run("/bin/bash", ["-c", run.Hint("demo1", "qemu-io ")], TimeSpan.FromSeconds(30));
        Assert.Multiple(() =>
        {
            Assert.That(map.ExitCode, Is.Zero, map.ToString);
            Assert.That(map.Stdout.Split('\n'), Has.Some.EndsWith(" data"), $"the base's files are data\n{map}");
            Assert.That(read.ExitCode, Is.Zero, read.ToString);
            Assert.That(read.Stdout, Does.Contain("read 512/512 bytes at offset 0"), read.ToString);
        });
    }

    private static void WriteMarker(string uri)
    {
        var write = ClientTool.QemuIo.Run("-f", "raw", uri, "-c", $"write -P 0x5a {MarkerOffset} {MarkerBytes}");
        Assert.That(write.ExitCode, Is.Zero, write.ToString);
    }

    private static long Size(string uri)
    {
        var result = ClientTool.Nbdinfo.Run("--size", uri);
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        return long.Parse(result.Stdout.Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary><c>nbdinfo --map=blockoverlay:layer</c> as (offset, length, layer) extents.</summary>
    private static List<(long Offset, long Length, int Layer)> LayerMap(string uri)
    {
        var result = ClientTool.Nbdinfo.Run("--map=blockoverlay:layer", uri);
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture)))
            .ToList();
    }

    /// <summary>Asserts the server marked the store cleanly shut down; returns the store's id.</summary>
    private static string CheckShutDownCleanly(string store)
    {
        var info = Tool.Run(ServerProcess.BinaryPath, ["store", "info", store], TimeSpan.FromSeconds(30));
        Assert.That(info.ExitCode, Is.Zero, info.ToString);
        var fields = info.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 2)).ToDictionary(f => f[0].Trim(), f => f[1].Trim());
        Assert.That(fields["last shutdown"], Is.EqualTo("clean"), info.ToString);
        return fields["store id"];
    }

    /// <summary>No make arguments and the default port when 10809 is free; else TCP moved to a free port.</summary>
    private static (string[] MakeArgs, int Port) ChooseTcpPort()
    {
        if (IsFree(DefaultPort))
        {
            return ([], DefaultPort);
        }

        int port = FreePort();
        TestContext.Out.WriteLine($"127.0.0.1:{DefaultPort} is taken on this machine: make run listens on TCP port {port} instead (RUN_ARGS)");
        return ([$"RUN_ARGS=--listen unix:var/blockoverlay.sock --listen tcp:127.0.0.1:{port}"], port);
    }

    private static bool IsFree(int port)
    {
        using var probe = new TcpListener(IPAddress.Loopback, port);
        try
        {
            probe.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
