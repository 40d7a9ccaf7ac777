using System.Diagnostics;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Bases;

/// <summary>
/// What the base tests share: the registry's files beside a workspace's store, the rows of
/// <c>base list</c>, a snapshot of everything in the workspace (to prove a refused command
/// left nothing behind), and the one-line-error check.
/// </summary>
internal static class BaseTestKit
{
    public static string RegistryPath(StoreWorkspace ws) => ws.StorePath + ".bases.json";

    public static string ImportDirectory(StoreWorkspace ws) => ws.StorePath + ".bases";

    /// <summary><c>base add NAME IMAGE [--import] --store STORE</c>, which must succeed.</summary>
    public static ToolResult Add(StoreWorkspace ws, string name, string image, bool import = false) =>
        StoreWorkspace.CliOk([.. new[] { "base", "add", name, image }, .. import ? new[] { "--import" } : [], "--store", ws.StorePath]);

    /// <summary>The rows of <c>base list</c>, split at their tabs: name, size, path, instances using it.</summary>
    public static IReadOnlyList<string[]> List(StoreWorkspace ws) =>
        StoreWorkspace.CliOk("base", "list", "--store", ws.StorePath).Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t'))
            .ToList();

    /// <summary>
    /// Every file and directory under the workspace with its size, and the registry's hash:
    /// equal snapshots mean nothing was created, deleted, resized, and the registry is as it was.
    /// The store's own bytes are left out: opening it to list instances may rewrite its superblock.
    /// </summary>
    public static string Snapshot(StoreWorkspace ws)
    {
        var entries = Directory.EnumerateFileSystemEntries(ws.Path, "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(path => File.Exists(path) ? $"{path} {new FileInfo(path).Length}" : $"{path}/");
        string registry = File.Exists(RegistryPath(ws)) ? StoreWorkspace.Sha256(RegistryPath(ws)) : "no registry";
        return string.Join('\n', entries.Append("registry " + registry));
    }

    /// <summary>Exit code 1, nothing on standard output, one line on standard error: "blockoverlay COMMAND: … REASON …".</summary>
    public static void AssertOneLineError(ToolResult result, string command, string reason)
    {
        var lines = result.Stderr.TrimEnd('\n').Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString);
            Assert.That(result.Stdout, Is.Empty, result.ToString);
            Assert.That(lines, Has.Length.EqualTo(1), result.ToString);
            Assert.That(lines[0], Does.StartWith($"blockoverlay {command}: ").And.Contain(reason), result.ToString);
        });
    }

    /// <summary>Blocks allocated to a file, in bytes (st_blocks × 512): how sparse it is.</summary>
    public static long AllocatedBytes(string path) =>
        long.Parse(Tool.Run("/usr/bin/stat", ["-c", "%b", path], TimeSpan.FromSeconds(10)).Stdout.Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;
}

/// <summary>
/// nbdkit serving a file read-only on a unix socket in the workspace, optionally through
/// filters (<c>--filter=error</c>, <c>--filter=rate</c>) whose parameters follow the file's.
/// In the foreground and killed by its pid when disposed; one per workspace.
/// </summary>
internal sealed class NbdkitServer : IDisposable
{
    private static readonly ClientTool Nbdkit = new("nbdkit", "nbdkit");
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(10);

    private readonly BackgroundProcess _process;

    private NbdkitServer(string socket, BackgroundProcess process)
    {
        Uri = $"nbd+unix:///?socket={socket}";
        _process = process;
    }

    /// <summary>The URI of its export.</summary>
    public string Uri { get; }

    public static NbdkitServer Start(StoreWorkspace ws, string image, string[]? filters = null, string[]? parameters = null)
    {
        // Short names: a unix socket's path has room for 107 bytes and the workspace takes 70.
        string socket = ws["k.sock"];
        string pidFile = ws["k.pid"]; // nbdkit writes it once it accepts connections
        string[] args = ["-f", "-r", "-U", socket, "-P", pidFile, .. filters ?? [], "file", image, .. parameters ?? []];
        var process = BackgroundProcess.Start(Nbdkit.Path, args);
        var clock = Stopwatch.StartNew();
        while (!File.Exists(pidFile))
        {
            if (process.HasExited || clock.Elapsed > StartTimeout)
            {
                string description = process.ToString();
                process.Dispose();
                Assert.Fail($"nbdkit did not start serving {image}\n{description}");
            }

            Thread.Sleep(20);
        }

        return new NbdkitServer(socket, process);
    }

    public void Dispose() => _process.Dispose();
}
