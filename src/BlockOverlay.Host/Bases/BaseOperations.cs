using System.Globalization;
using System.Text;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// What <c>base add</c>, <c>base list</c> and <c>base remove</c> do, returning what they
/// print. Every check that can fail is made before anything is written (and the registry's
/// checks again under its lock), so a refused command leaves the registry, the image
/// directory and the lock file as they were.
/// </summary>
/// <remarks>
/// "In use" means an instance's recorded base path and the registered path name one file
/// (compared with symbolic links resolved, <see cref="CanonicalPath"/>). It is checked when a
/// base is removed; an instance created over it right after that check finds its base gone
/// and is refused when served, as for any missing base, never corrupted.
/// </remarks>
internal static class BaseOperations
{
    private const double MiB = 1 << 20;

    public static async Task<string> AddAsync(string storePath, string name, string image, bool import, CancellationToken cancel)
    {
        if (!InstanceName.IsValid(name, out string? problem))
        {
            throw new FormatException($"'{name}' cannot be a base name: {problem}");
        }

        var registry = new BaseRegistry(storePath);
        registry.RequireStore();

        // Checked before locking (and copying) too: a refused add creates no lock file and copies nothing.
        BaseRegistry.EnsureFree(registry.Read(), name);
        return import ? await ImportAsync(registry, name, image, cancel) : await ReferenceAsync(registry, name, image);
    }

    public static async Task<string> ListAsync(string storePath)
    {
        var registry = new BaseRegistry(storePath);
        registry.RequireStore();
        var bases = registry.Read();
        if (bases.Count == 0)
        {
            return "";
        }

        var instances = await InstanceBases.ReadAsync(registry.StorePath);
        var text = new StringBuilder();
        foreach (var entry in bases)
        {
            int users = instances.Count(i => CanonicalPath.SameFile(i.BasePath, entry.Path));
            text.Append(CultureInfo.InvariantCulture, $"{entry.Name}\t{await SizeOfAsync(entry.Path)}\t{entry.Path}\t{users}\n");
        }

        return text.ToString();
    }

    public static async Task<string> RemoveAsync(string storePath, string name)
    {
        var registry = new BaseRegistry(storePath);
        registry.RequireStore();

        // Checked before locking as well, so that an unknown name creates no lock file.
        _ = Named(registry, registry.Read(), name);
        RegisteredBase entry;
        using (registry.Lock())
        {
            var bases = registry.Read();
            entry = Named(registry, bases, name);
            string[] users = [.. (await InstanceBases.ReadAsync(registry.StorePath)).Where(i => CanonicalPath.SameFile(i.BasePath, entry.Path)).Select(i => i.Instance)];
            if (users.Length > 0)
            {
                throw new IOException($"base '{name}' is in use by instance{(users.Length == 1 ? "" : "s")} {string.Join(", ", users)}; delete {(users.Length == 1 ? "it" : "them")} first");
            }

            // The image goes before its name: if writing the registry then fails, the name
            // shows its image missing and a second remove finishes the job.
            if (entry.Imported)
            {
                File.Delete(entry.Path);
                registry.RemoveImportDirectoryIfEmpty();
            }

            await registry.WriteAsync([.. bases.Where(b => b != entry)]);
        }

        return entry.Imported ? $"removed base '{name}' and deleted {entry.Path}\n" : $"removed base '{name}' ({entry.Path} is left as it is)\n";
    }

    private static async Task<string> ReferenceAsync(BaseRegistry registry, string name, string image)
    {
        if (NbdImageSource.IsUri(image))
        {
            throw new FormatException($"{image} is an NBD URI: an image on a server can only be copied in (add --import)");
        }

        string path;
        long size;
        if (RbdAddress.IsRbd(image))
        {
            // A snapshot in Ceph is named by its address; opening it proves it is there and readable now.
            await using var snapshot = BaseImage.Open(image, StoreDevices.Ceph);
            (path, size) = (snapshot.Path, snapshot.Size);
        }
        else
        {
            path = RegularFile(image);
            using var file = File.OpenHandle(path); // proves it readable now, not only at the first instance create
            size = RandomAccess.GetLength(file);
        }

        using (registry.Lock())
        {
            var bases = registry.Read();
            BaseRegistry.EnsureFree(bases, name);
            await registry.WriteAsync([.. bases, new RegisteredBase(name, path, Imported: false)]);
        }

        return $"added base '{name}': {path} ({new ByteSize(size)})\n";
    }

    private static async Task<string> ImportAsync(BaseRegistry registry, string name, string image, CancellationToken cancel)
    {
        await using var source = NbdImageSource.IsUri(image) ? NbdImageSource.Connect(image) : (IImageSource)FileImageSource.Open(RegularFile(image));
        var result = await BaseImport.RunAsync(registry, name, source, cancel);
        return string.Create(CultureInfo.InvariantCulture,
            $"imported base '{name}' from {source.Name}: {result.Path} ({new ByteSize(result.Size)}, {result.DataBytes / MiB:0.0} MiB of data, " +
            $"{result.Elapsed.TotalSeconds:0.0} s, {ImportProgress.Rate(result.Size, result.Elapsed):0.0} MiB/s)\n");
    }

    /// <summary>The absolute path of <paramref name="image"/>, which must be a regular file.</summary>
    private static string RegularFile(string image)
    {
        string path = Path.GetFullPath(image);
        return PosixFiles.KindOf(path) switch
        {
            PosixFiles.FileKind.Regular => path,
            PosixFiles.FileKind.Missing => throw new FileNotFoundException($"{path}: no such image"),
            PosixFiles.FileKind.Directory => throw new IOException($"{path} is a directory, not a raw image file"),
            _ => throw new IOException($"{path} is not a regular file (a base is a raw image file)"),
        };
    }

    private static RegisteredBase Named(BaseRegistry registry, IReadOnlyList<RegisteredBase> bases, string name) =>
        bases.FirstOrDefault(b => b.Name == name)
        ?? throw new IOException($"no base named '{name}' (see: blockoverlay base list --store {registry.StorePath})");

    private static async Task<string> SizeOfAsync(string path)
    {
        if (RbdAddress.IsRbd(path))
        {
            try
            {
                await using var snapshot = BaseImage.Open(path, StoreDevices.Ceph);
                return new ByteSize(snapshot.Size).ToString();
            }
            catch (BaseImageChangedException)
            {
                return "missing";
            }
        }

        return PosixFiles.KindOf(path) == PosixFiles.FileKind.Missing ? "missing" : new ByteSize(new FileInfo(path).Length).ToString();
    }
}
