using System.Diagnostics;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host.Demo;

/// <summary>
/// The store behind <c>blockoverlay serve</c> with no arguments, and so behind <c>make run</c>:
/// in one directory, an ext4 base image made from a generated tree and a store holding two
/// instances over it. A first run thus has real disks to attach, with a file system a guest
/// can mount, and shows the point of the project: two instances sharing one base.
/// </summary>
/// <remarks>
/// <para><b>Once.</b> The store file is the sign that the demo exists: when it is there nothing
/// is touched, so a second run serves what the first one wrote.</para>
/// <para><b>Nothing half-made.</b> Each piece is made under a <c>.partial</c> name and renamed
/// when complete, the store last, after its instances; so a piece under its real name is
/// always whole. An error removes what this call made. A run killed half-way (Ctrl-C while
/// mkfs or the store's zeroing runs) leaves only <c>.partial</c> names, which the next run
/// removes before it starts. The base is renamed before the instances are made because they
/// record its path. An existing base without a store (the store was deleted) is reused.</para>
/// <para><b>Through the store's own code.</b> The store and the instances are made with the
/// calls <c>store create</c> and <c>instance create</c> make (<see cref="FileDevice.CreateAsync"/>,
/// <see cref="UpperStore.CreateAsync"/>, <see cref="BaseImage"/>'s identity,
/// <see cref="UpperStore.CreateInstanceAsync"/>), so the demo is a store like any other.</para>
/// </remarks>
internal static class DemoStore
{
    /// <summary>Small enough to make in a blink, big enough for a guest to write into.</summary>
    private const long BaseImageBytes = 64L << 20;

    /// <summary>Room for both instances rewritten entirely several times, plus the journal.</summary>
    private const long StoreBytes = 1L << 30;

    /// <summary>Pseudo-random, so the base holds data that neither compresses nor reads as holes.</summary>
    private const int RandomFileBytes = 4 << 20;

    private const string PartialSuffix = ".partial";

    private static readonly string[] s_instances = ["demo1", "demo2"];

    /// <summary>
    /// Makes <paramref name="directory"/> and, unless it already holds a store, the demo's base
    /// image, store and instances in it, reporting each step on <paramref name="progress"/>.
    /// Returns the store's path. Every failure is an <see cref="IOException"/> naming the
    /// directory and what failed, with nothing made left behind.
    /// </summary>
    public static async Task<string> EnsureAsync(string directory, TextWriter progress)
    {
        var paths = new DemoPaths(directory);
        try
        {
            Directory.CreateDirectory(directory);
            if (File.Exists(paths.Store))
            {
                await progress.WriteLineAsync($"demo: serving the existing store {paths.Store} (delete {directory} to start afresh)");
            }
            else
            {
                await CreateAsync(paths, progress);
            }

            return paths.Store;
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } reason)
        {
            // The context in the message: where the demo was being made.
            throw new IOException($"cannot make the demo in {directory}: {reason}", e);
        }
    }

    private static async Task CreateAsync(DemoPaths paths, TextWriter progress)
    {
        RemovePartials(paths);
        bool madeBase = false;
        try
        {
            if (!File.Exists(paths.BaseImage))
            {
                await progress.WriteLineAsync($"demo: creating the base image {paths.BaseImage} ({new ByteSize(BaseImageBytes)} ext4, from a generated tree)");
                await CreateBaseImageAsync(paths);
                madeBase = true;
            }

            await progress.WriteLineAsync($"demo: creating the store {paths.Store} ({new ByteSize(StoreBytes)}) with instances {string.Join(", ", s_instances)}");
            await CreateStoreAsync(paths);
        }
        catch
        {
            if (madeBase)
            {
                File.Delete(paths.BaseImage);
            }

            throw;
        }
        finally
        {
            RemovePartials(paths);
        }
    }

    private static async Task CreateBaseImageAsync(DemoPaths paths)
    {
        DemoTree.Write(paths.Tree, RandomFileBytes);
        await RunMkfsAsync(paths.Tree, paths.BaseImage + PartialSuffix);
        File.Move(paths.BaseImage + PartialSuffix, paths.BaseImage);
    }

    /// <summary>
    /// <c>mkfs.ext4 -d</c> copies the tree into the new file system without mounting anything,
    /// so no root is needed. 4 KiB blocks: for an image this small mke2fs would pick 1 KiB
    /// ones, and every guest write would then be a partial write of a 4 KiB store block.
    /// </summary>
    private static async Task RunMkfsAsync(string tree, string image)
    {
        string[] args = ["-q", "-F", "-b", "4096", "-L", "demo", "-d", tree, image, $"{BaseImageBytes >> 10}k"];
        var start = new ProcessStartInfo(FindProgram("mkfs.ext4"), args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        using var process = Process.Start(start) ?? throw new IOException($"could not start {start.FileName}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new IOException($"{start.FileName} failed with exit code {process.ExitCode}: {(await output + await errors).Trim()}");
        }
    }

    /// <summary>
    /// A program on PATH, or in /usr/sbin or /sbin, where Debian puts mkfs.ext4 and which are
    /// not on an ordinary user's PATH.
    /// </summary>
    private static string FindProgram(string name)
    {
        var directories = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        return directories.Concat(["/usr/sbin", "/sbin"]).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists)
               ?? throw new IOException($"{name} is not installed: install e2fsprogs (make deps does)");
    }

    private static async Task CreateStoreAsync(DemoPaths paths)
    {
        string partial = paths.Store + PartialSuffix;
        await FormatStoreAsync(partial);
        await CreateInstancesAsync(partial, paths.BaseImage);
        File.Move(partial, paths.Store);
    }

    /// <summary>What <c>store create</c> does: a file written through once, then formatted.</summary>
    private static async Task FormatStoreAsync(string path)
    {
        await using var device = await FileDevice.CreateAsync(path, StoreBytes);
        await UpperStore.CreateAsync(device);
    }

    /// <summary>What <c>instance create NAME --base IMAGE</c> does, for each demo instance.</summary>
    private static async Task CreateInstancesAsync(string storePath, string baseImage)
    {
        await using var session = await StoreSession.OpenAsync(storePath);
        BaseIdentity identity;
        await using (var image = BaseImage.Open(baseImage, StoreDevices.Ceph))
        {
            identity = await image.IdentifyAsync();
        }

        foreach (string name in s_instances)
        {
            await session.Store.CreateInstanceAsync(name, identity.Size, identity);
        }
    }

    private static void RemovePartials(DemoPaths paths)
    {
        File.Delete(paths.BaseImage + PartialSuffix);
        File.Delete(paths.Store + PartialSuffix);
        if (Directory.Exists(paths.Tree))
        {
            Directory.Delete(paths.Tree, recursive: true);
        }
    }

    /// <summary>Where each piece lives; the tree is a partial name too, so a killed run's is removed.</summary>
    private sealed record DemoPaths(string Directory)
    {
        public string BaseImage => Path.Combine(Directory, "demo-base.ext4");

        public string Store => Path.Combine(Directory, "store");

        public string Tree => Path.Combine(Directory, "demo-base.tree" + PartialSuffix);
    }
}
