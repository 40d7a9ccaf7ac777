using System.Security.Cryptography;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// A directory for one test's store, base images, sockets and copies, under /var/tmp:
/// a real file system, because the store is opened with O_DIRECT, which tmpfs refuses
/// (and TMPDIR may point at one). Deleted with everything in it.
/// </summary>
internal sealed class StoreWorkspace : IDisposable
{
    public const int Block = 4096;

    private readonly string? _store;

    /// <summary>A workspace whose store is the file <c>store</c> in it, or <paramref name="store"/> (an rbd: address).</summary>
    public StoreWorkspace(string? store = null)
    {
        Path = System.IO.Path.Combine("/var/tmp", $"blockoverlay-store-tests-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
        _store = store;
    }

    public string Path { get; }

    /// <summary>The store of this workspace (created by <see cref="CreateStore"/>): the file <c>store</c> in it unless given.</summary>
    public string StorePath => _store ?? this["store"];

    /// <summary>The full path of <paramref name="name"/> inside this directory.</summary>
    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>Runs <c>bin/blockoverlay ARGS</c> to completion (30 s at most).</summary>
    public static ToolResult Cli(params string[] args) => Tool.Run(ServerProcess.BinaryPath, args, TimeSpan.FromSeconds(30));

    /// <summary>Runs <c>bin/blockoverlay ARGS</c> and fails the test unless it exits 0.</summary>
    public static ToolResult CliOk(params string[] args)
    {
        var result = Cli(args);
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        return result;
    }

    public void CreateStore(string size = "128M") => CliOk("store", "create", StorePath, "--size", size);

    /// <summary><c>instance create NAME --base BASE [--size SIZE]</c> (or over zeros when <paramref name="basePath"/> is null).</summary>
    public void CreateInstance(string name, string? basePath, string? size = null)
    {
        var args = new List<string> { "instance", "create", name };
        if (basePath is not null)
        {
            args.AddRange(["--base", basePath]);
        }

        if (size is not null)
        {
            args.AddRange(["--size", size]);
        }

        args.AddRange(["--store", StorePath]);
        CliOk([.. args]);
    }

    /// <summary>The rows of <c>instance list</c>, each split at its tabs (name, size, upper bytes, base).</summary>
    public IReadOnlyList<string[]> ListInstances() =>
        CliOk("instance", "list", "--store", StorePath).Stdout
            .Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t'))
            .ToList();

    /// <summary>The output of <c>store info</c> (the store must not be served).</summary>
    public string StoreInfo() => CliOk("store", "info", StorePath).Stdout;

    /// <summary>A file of <paramref name="length"/> seeded random bytes; returns its content.</summary>
    public byte[] WriteRandomFile(string name, int length, int seed)
    {
        var content = new byte[length];
        new Random(seed).NextBytes(content);
        File.WriteAllBytes(this[name], content);
        return content;
    }

    /// <summary>
    /// A sparse file of <paramref name="size"/> bytes with seeded random bytes in
    /// <paramref name="dataRanges"/> and holes elsewhere; returns its content.
    /// </summary>
    public byte[] WriteSparseFile(string name, long size, int seed, params (long Offset, int Length)[] dataRanges)
    {
        var content = new byte[size];
        var random = new Random(seed);
        using var file = new FileStream(this[name], FileMode.CreateNew, FileAccess.Write);
        file.SetLength(size);
        foreach (var (offset, length) in dataRanges)
        {
            var span = content.AsSpan((int)offset, length);
            random.NextBytes(span);
            file.Position = offset;
            file.Write(span);
        }

        return content;
    }

    public static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(file));
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
