using System.Diagnostics;
using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Bases;

/// <summary>
/// <c>base add NAME IMAGE --import</c>: the image is copied byte for byte (sha256) to
/// <c>STORE.bases/NAME.raw</c>, from a file or over NBD (nbdkit, and our own server), with
/// holes where the source has them; a progress bar on a terminal and none elsewhere; and an
/// import that fails or is interrupted leaves nothing behind (the registry's lock file, once
/// made, stays by design).
/// </summary>
public class BaseImportTests
{
    private const long ImageSize = 64L << 20;

    // Data at the start, in the middle (off alignment) and at the very end; holes between.
    private static readonly (long Offset, int Length)[] DataRanges = [(0, 1 << 20), ((20 << 20) + 12345, 3 << 20), (ImageSize - 4096, 4096)];
    private static readonly long DataBytes = DataRanges.Sum(r => (long)r.Length);

    [Test]
    public void Import_from_a_sparse_file_copies_it_exactly_and_sparsely_and_remove_deletes_the_copy()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteSparseFile("sparse.raw", ImageSize, seed: 91, DataRanges);

        var imported = BaseTestKit.Add(ws, "sparse", ws["sparse.raw"], import: true);

        string copy = Path.Combine(BaseTestKit.ImportDirectory(ws), "sparse.raw");
        AssertImportedCopy(ws, imported, copy, ws["sparse.raw"]);
        Assert.That(BaseTestKit.List(ws), Is.EqualTo(new[] { new[] { "sparse", "64M", copy, "0" } }));

        var removed = StoreWorkspace.CliOk("base", "remove", "sparse", "--store", ws.StorePath);

        Assert.That(removed.Stdout, Does.Contain("deleted " + copy));
        Assert.That(Path.Exists(BaseTestKit.ImportDirectory(ws)), Is.False, "the imported copy and its emptied directory are gone");
        Assert.That(File.Exists(ws["sparse.raw"]), Is.True, "the source is the user's");
    }

    [Test]
    public void Import_from_nbdkit_over_a_unix_socket_copies_the_export_exactly_and_sparsely()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteSparseFile("sparse.raw", ImageSize, seed: 92, DataRanges);
        using var nbdkit = NbdkitServer.Start(ws, ws["sparse.raw"]);

        var imported = BaseTestKit.Add(ws, "net", nbdkit.Uri, import: true);

        AssertImportedCopy(ws, imported, Path.Combine(BaseTestKit.ImportDirectory(ws), "net.raw"), ws["sparse.raw"]);
    }

    [Test]
    public void Import_from_a_blockoverlay_file_export_copies_it_exactly()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteSparseFile("sparse.raw", ImageSize, seed: 93, DataRanges);
        using var server = ServerProcess.Start($"img=file:{ws["sparse.raw"]}:ro");

        var imported = BaseTestKit.Add(ws, "ours", server.UnixUri("img"), import: true);

        AssertImportedCopy(ws, imported, Path.Combine(BaseTestKit.ImportDirectory(ws), "ours.raw"), ws["sparse.raw"]);
    }

    [Test]
    public void An_instance_can_be_made_on_an_imported_base_and_keeps_it_from_being_removed()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", 1 << 20, seed: 94);
        BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"], import: true);
        string copy = Path.Combine(BaseTestKit.ImportDirectory(ws), "rootfs.raw");
        ws.CreateInstance("web", copy);

        BaseTestKit.AssertOneLineError(StoreWorkspace.Cli("base", "remove", "rootfs", "--store", ws.StorePath), "base remove", "in use by instance web");
        Assert.That(File.Exists(copy), Is.True, "the copy an instance uses was deleted");
    }

    [Test]
    public void On_a_terminal_the_progress_is_one_redrawn_line_and_elsewhere_there_is_none()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteSparseFile("sparse.raw", ImageSize, seed: 95, DataRanges);

        // script(1) runs the command on a pseudo-terminal and copies what it printed.
        string command = $"{ServerProcess.BinaryPath} base add tty {ws["sparse.raw"]} --import --store {ws.StorePath}";
        var onTerminal = Tool.Run("/usr/bin/script", ["-qec", command, "/dev/null"], TimeSpan.FromSeconds(30));
        var piped = StoreWorkspace.CliOk("base", "add", "piped", ws["sparse.raw"], "--import", "--store", ws.StorePath);

        Assert.Multiple(() =>
        {
            Assert.That(onTerminal.ExitCode, Is.Zero, onTerminal.ToString);
            Assert.That(onTerminal.Stdout, Does.Contain("\rimporting tty [").And.Contain("100%").And.Contain("64.0/64.0 MiB").And.Contain("MiB/s"), onTerminal.ToString);
            Assert.That(onTerminal.Stdout, Does.Contain("imported base 'tty'"), onTerminal.ToString);
            Assert.That(piped.Stderr, Is.Empty, "no progress when standard error is not a terminal");
        });
    }

    [Test]
    public void An_import_whose_reads_fail_midway_leaves_nothing_behind()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", 8 << 20, seed: 96);
        BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"]); // a registry (and its lock file) to find unchanged
        using var nbdkit = NbdkitServer.Start(ws, ws["rootfs.raw"], ["--filter=error"], ["error-pread=EIO", "error-pread-rate=100%"]);
        var before = BaseTestKit.Snapshot(ws);

        var result = StoreWorkspace.Cli("base", "add", "broken", nbdkit.Uri, "--import", "--store", ws.StorePath);

        BaseTestKit.AssertOneLineError(result, "base add", "cannot read " + nbdkit.Uri);
        Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before), "no temp file, no directory, registry unchanged");
    }

    [Test]
    public void An_import_interrupted_by_SIGTERM_deletes_what_it_wrote_and_says_so()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", 32 << 20, seed: 97);
        BaseTestKit.Add(ws, "rootfs", ws["rootfs.raw"]); // a registry (and its lock file) to find unchanged
        using var nbdkit = NbdkitServer.Start(ws, ws["rootfs.raw"], ["--filter=rate"], ["rate=64M"]); // 64 Mbit/s: about 4 s
        var before = BaseTestKit.Snapshot(ws);
        using var import = Process.Start(new ProcessStartInfo(ServerProcess.BinaryPath, ["base", "add", "slow", nbdkit.Uri, "--import", "--store", ws.StorePath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        try
        {
            var stdout = import.StandardOutput.ReadToEndAsync();
            var stderr = import.StandardError.ReadToEndAsync();
            WaitForTempFile(BaseTestKit.ImportDirectory(ws), import);
            Tool.Run("/usr/bin/kill", ["-TERM", import.Id.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(5));

            Assert.That(import.WaitForExit(TimeSpan.FromSeconds(10)), Is.True, "still importing 10 s after SIGTERM");
            Assert.That(import.ExitCode, Is.EqualTo(1), () => stderr.Result);
            Assert.That(stdout.Result, Is.Empty);
            Assert.That(stderr.Result, Is.EqualTo("blockoverlay base add: interrupted by SIGTERM; nothing was imported\n"));
            Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before));
        }
        finally
        {
            if (!import.HasExited)
            {
                import.Kill();
            }
        }
    }

    [Test]
    public void An_unregistered_file_in_the_import_directory_is_not_overwritten()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("rootfs.raw", 1 << 20, seed: 98);
        Directory.CreateDirectory(BaseTestKit.ImportDirectory(ws));
        string leftover = Path.Combine(BaseTestKit.ImportDirectory(ws), "rootfs.raw");
        File.WriteAllText(leftover, "not an image");
        var before = BaseTestKit.Snapshot(ws);

        var result = StoreWorkspace.Cli("base", "add", "rootfs", ws["rootfs.raw"], "--import", "--store", ws.StorePath);

        BaseTestKit.AssertOneLineError(result, "base add", $"{leftover} exists but no base named 'rootfs' does");
        Assert.That(File.ReadAllText(leftover), Is.EqualTo("not an image"));
        Assert.That(BaseTestKit.Snapshot(ws), Is.EqualTo(before));
    }

    private static void AssertImportedCopy(StoreWorkspace ws, ToolResult imported, string copy, string source)
    {
        Assert.Multiple(() =>
        {
            Assert.That(imported.Stdout, Does.Contain("imported base").And.Contain(copy), imported.ToString);
            Assert.That(StoreWorkspace.Sha256(copy), Is.EqualTo(StoreWorkspace.Sha256(source)), "the copy's content");
            Assert.That(BaseTestKit.AllocatedBytes(copy), Is.LessThanOrEqualTo(DataBytes + (1 << 20)), "the copy keeps the holes");
            Assert.That(Directory.GetFileSystemEntries(BaseTestKit.ImportDirectory(ws)), Is.EqualTo(new[] { copy }), "no temp file stays");
        });
    }

    private static void WaitForTempFile(string directory, Process import)
    {
        var clock = Stopwatch.StartNew();
        while (!(Directory.Exists(directory) && Directory.EnumerateFiles(directory, "*.part").Any()))
        {
            Assert.That(import.HasExited || clock.Elapsed > TimeSpan.FromSeconds(10), Is.False, "no import under way");
            Thread.Sleep(20);
        }
    }
}
