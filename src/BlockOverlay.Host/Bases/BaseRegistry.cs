using System.Text.Json;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// The names of a store's base images: <c>STORE.bases.json</c> next to the store, plus the
/// images copied in with <c>--import</c>, which live in <c>STORE.bases/NAME.raw</c>.
/// </summary>
/// <remarks>
/// <para>
/// <b>Why a sidecar and not the store.</b> The store's format is about instance data and
/// stays that way. The registry is only a convenience naming of files: a name is turned into
/// a path once, when an instance is created, and from then on the instance records that path
/// and the image's fingerprint itself. So a stale, edited or lost registry can never corrupt
/// an instance; at worst an instance's base is gone or changed, and that instance is refused
/// exactly as it would be without any registry. Being outside the store, the registry needs
/// neither the store's lock nor a server's help: it can be edited while a server runs.
/// </para>
/// <para>
/// <b>Changes.</b> Read-modify-write under an exclusive flock on <c>STORE.bases.lock</c>
/// (independent of the store's own lock), so concurrent CLIs take turns and no change is
/// lost. New content goes to a temp file that is fsynced, renamed over the registry, and the
/// directory fsynced: readers take no lock, because they see the old registry or the new one,
/// never a torn one, even after a crash. The lock file stays once made: deleting a lock file
/// races with whoever opens it next. Refused commands are refused before locking, so they
/// create none.
/// </para>
/// </remarks>
internal sealed class BaseRegistry
{
    private const int FormatVersion = 1;
    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(30);
    private readonly string _lockPath;
    private readonly bool _rbdStore;

    public BaseRegistry(string storePath)
    {
        _rbdStore = RbdAddress.IsRbd(storePath);
        StorePath = _rbdStore ? RbdAddress.Parse(storePath).ToString() : Path.GetFullPath(storePath);
        FilePath = StorePath + ".bases.json";
        ImportDirectory = StorePath + ".bases";
        _lockPath = StorePath + ".bases.lock";
    }

    public string StorePath { get; }

    /// <summary>The registry file.</summary>
    public string FilePath { get; }

    /// <summary>Where imported images go.</summary>
    public string ImportDirectory { get; }

    /// <summary>
    /// The image an instance of the store at <paramref name="storePath"/> should use for
    /// <c>--base NAME_OR_PATH</c>, as an absolute path: a registered name wins, else an
    /// existing file. Throws <see cref="FileNotFoundException"/> when it is neither. A snapshot
    /// in Ceph (<c>rbd:POOL/IMAGE@SNAP</c>) is its own address: it cannot be a name.
    /// </summary>
    public static string Resolve(string storePath, string nameOrPath)
    {
        ArgumentNullException.ThrowIfNull(nameOrPath);
        if (RbdAddress.IsRbd(nameOrPath))
        {
            return RbdAddress.Parse(nameOrPath).ToString();
        }

        var registry = new BaseRegistry(storePath);

        // Only something that can be a name is looked up, so a path works even beside a damaged registry.
        if (InstanceName.IsValid(nameOrPath, out _) && registry.Read().FirstOrDefault(b => b.Name == nameOrPath) is { } registered)
        {
            return registered.Path;
        }

        return File.Exists(nameOrPath)
            ? Path.GetFullPath(nameOrPath)
            : throw new FileNotFoundException(
                $"'{nameOrPath}' is neither a base registered for {registry.StorePath} (see: blockoverlay base list --store {storePath}) nor an image file");
    }

    /// <summary>Refuses a name that <paramref name="bases"/> already has.</summary>
    public static void EnsureFree(IReadOnlyList<RegisteredBase> bases, string name)
    {
        if (bases.FirstOrDefault(b => b.Name == name) is { } taken)
        {
            throw new IOException($"a base named '{name}' already exists ({taken.Path})");
        }
    }

    /// <summary>The path an image imported under <paramref name="name"/> gets.</summary>
    public string ImportPathFor(string name) => Path.Combine(ImportDirectory, name + ".raw");

    /// <summary>Refuses to keep a registry for a store that is not there, or has no directory to keep it in (an RBD store).</summary>
    public void RequireStore()
    {
        if (_rbdStore)
        {
            throw new FormatException(
                $"{StorePath} is a store on Ceph: base names live in a file beside a store file, and an RBD image has no such place; " +
                "give instance create --base the image's path or a snapshot's rbd:POOL/IMAGE@SNAP");
        }

        if (PosixFiles.KindOf(StorePath) is PosixFiles.FileKind.Missing or PosixFiles.FileKind.Directory)
        {
            throw new FileNotFoundException($"{StorePath}: no such store (make one with: blockoverlay store create {StorePath} --size SIZE)");
        }
    }

    /// <summary>
    /// The registered bases as last written (no lock needed: see the remarks). Read in one
    /// blocking call: the file is small, and every `instance create --base NAME` reads it.
    /// </summary>
    public IReadOnlyList<RegisteredBase> Read()
    {
        if (!File.Exists(FilePath))
        {
            return [];
        }

        RegistryDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(File.ReadAllBytes(FilePath), RegistryJson.Default.RegistryDocument);
        }
        catch (JsonException e)
        {
            throw Damaged(e.Message);
        }

        if (document is { Version: not FormatVersion })
        {
            throw new IOException($"{FilePath} has format version {document.Version}, which this blockoverlay does not know (it reads {FormatVersion})");
        }

        return document is { Bases: { } bases } && bases.All(IsWellFormed)
            ? bases
            : throw Damaged("an entry lacks a valid name or an absolute path");
    }

    /// <summary>
    /// Waits (up to 30 s) for the registry lock; hold it from reading the registry to writing
    /// the changed one, and dispose it after.
    /// </summary>
    public IDisposable Lock() => PosixFiles.LockExclusive(_lockPath, LockTimeout);

    /// <summary>Replaces the registry atomically and durably; the caller holds <see cref="Lock"/>.</summary>
    public async Task WriteAsync(IReadOnlyList<RegisteredBase> bases)
    {
        string temp = FilePath + ".tmp";
        try
        {
            await using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                await JsonSerializer.SerializeAsync(file, new RegistryDocument(FormatVersion, bases), RegistryJson.Default.RegistryDocument);
                file.Flush(flushToDisk: true);
            }

            File.Move(temp, FilePath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }

        PosixFiles.SyncDirectory(Path.GetDirectoryName(FilePath)!);
    }

    /// <summary>
    /// Removes <see cref="ImportDirectory"/> if nothing is left in it. The caller holds
    /// <see cref="Lock"/>, so this cannot happen between another import's creating the
    /// directory and its temp file in it.
    /// </summary>
    public void RemoveImportDirectoryIfEmpty()
    {
        if (Directory.Exists(ImportDirectory) && !Directory.EnumerateFileSystemEntries(ImportDirectory).Any())
        {
            Directory.Delete(ImportDirectory);
        }
    }

    private static bool IsWellFormed(RegisteredBase? entry) =>
        entry is { Name: { } name, Path: { } path } && InstanceName.IsValid(name, out _) && (Path.IsPathFullyQualified(path) || IsSnapshotAddress(path));

    private static bool IsSnapshotAddress(string path)
    {
        try
        {
            return RbdAddress.Parse(path).Snapshot is not null;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private IOException Damaged(string why) =>
        new($"{FilePath} is damaged ({why}); repair it or move it away (it only names images: no instance depends on it)");
}
