using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Engine.Tests.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// A base image for tests: seeded random bytes in a file on a real file system (the temp
/// directory; never /dev/shm), with its identity as an instance records it.
/// </summary>
internal sealed class TestBase : IDisposable
{
    private readonly TempDirectory _directory;

    private TestBase(TempDirectory directory, string path, byte[] bytes, BaseIdentity identity)
    {
        _directory = directory;
        Path = path;
        Bytes = bytes;
        Identity = identity;
    }

    public string Path { get; }

    /// <summary>The content written at creation: what the file must hold for ever.</summary>
    public byte[] Bytes { get; }

    public BaseIdentity Identity { get; }

    public string Directory => _directory.FullPath;

    public static async Task<TestBase> CreateAsync(int seed, int size, string name = "base.img")
    {
        var directory = new TempDirectory();
        try
        {
            string path = System.IO.Path.Combine(directory.FullPath, name);
            byte[] bytes = new byte[size];
            new Random(seed).NextBytes(bytes);
            await File.WriteAllBytesAsync(path, bytes);
            return new TestBase(directory, path, bytes, await IdentifyAsync(path));
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    public static async Task<BaseIdentity> IdentifyAsync(string path)
    {
        await using var image = BaseImage.Open(path);
        return await image.IdentifyAsync();
    }

    /// <summary>SHA-256 of the file as it is now.</summary>
    public byte[] HashFile() => SHA256.HashData(File.ReadAllBytes(Path));

    /// <summary>What an instance of <paramref name="size"/> bytes over this base reads before any write.</summary>
    public byte[] InitialContent(long size)
    {
        byte[] content = new byte[size];
        Bytes.AsSpan(0, (int)Math.Min(size, Bytes.Length)).CopyTo(content);
        return content;
    }

    public void Dispose() => _directory.Dispose();
}

/// <summary>What written data looks like.</summary>
internal enum ContentMode
{
    /// <summary>Seeded random bytes.</summary>
    Random,

    /// <summary>
    /// Self-describing: every 8-byte word (aligned in the virtual disk) names the instance, the
    /// operation and its own position, so any block read back can be told apart piece by piece.
    /// </summary>
    Stamped,
}

/// <summary>Encodes and decodes <see cref="ContentMode.Stamped"/> words.</summary>
internal static class Stamp
{
    private const byte Tag = 0xB5;

    public static ulong Word(int instance, long op, long position) =>
        ((ulong)Tag << 56) | ((ulong)(instance & 0xFF) << 48) | ((ulong)(op & 0xFFFFFF) << 24) | ((ulong)(position / 8) & 0xFFFFFF);

    /// <summary>Fills <paramref name="destination"/>, which lands at virtual byte <paramref name="offset"/>.</summary>
    public static void Fill(Span<byte> destination, int instance, long op, long offset)
    {
        Span<byte> word = stackalloc byte[8];
        for (int i = 0; i < destination.Length; i++)
        {
            long position = offset + i;
            BinaryPrimitives.WriteUInt64LittleEndian(word, Word(instance, op, position & ~7L));
            destination[i] = word[(int)(position & 7)];
        }
    }

    /// <summary>The instance and operation an aligned word names, if it is a stamp of this position.</summary>
    public static (int Instance, long Op)? Decode(ulong word, long position)
    {
        if ((byte)(word >> 56) != Tag || (long)(word & 0xFFFFFF) != ((position / 8) & 0xFFFFFF))
        {
            return null;
        }

        return ((int)((word >> 48) & 0xFF), (long)((word >> 24) & 0xFFFFFF));
    }
}

/// <summary>
/// The model of one instance: its bytes, and per 4 KiB block the contents it may show after a
/// crash — its content at the last durable point (flush, FUA, clean close, recovery) and every
/// content it had since, including that of an operation still in flight.
/// </summary>
internal sealed class InstanceModel
{
    public const int Block = UpperStore.BlockSize;

    public InstanceModel(int index, string name, byte[] initial)
    {
        Index = index;
        Name = name;
        Bytes = initial;
    }

    public int Index { get; }

    public string Name { get; }

    /// <summary>This instance's own random stream: operations on one instance may run beside those on others.</summary>
    public Random Rng { get; init; } = new(0);

    public long Size => Bytes.Length;

    public long Blocks => Bytes.Length / Block;

    /// <summary>The instance's id in the store (changes when it is re-created).</summary>
    public uint Id { get; set; }

    /// <summary>What the instance reads now (every acknowledged and in-flight change applied).</summary>
    public byte[] Bytes { get; private set; }

    /// <summary>Set while a delete + re-create is in flight: the id it had before.</summary>
    public uint? RecreatingFrom { get; set; }

    /// <summary>Blocks changed since the last durable point: every content each may show after a crash, oldest first.</summary>
    public Dictionary<long, List<BlockVersion>> Pending { get; } = [];

    public Span<byte> BlockSpan(long block) => Bytes.AsSpan((int)(block * Block), Block);

    /// <summary>Applies a change of bytes [offset, offset+length) made by <paramref name="apply"/>, remembering each block's versions.</summary>
    public void Change(long offset, long length, string label, Action<Span<byte>> apply)
    {
        long first = offset / Block, last = (offset + length - 1) / Block;
        for (long b = first; b <= last; b++)
        {
            if (!Pending.ContainsKey(b))
            {
                Pending[b] = [new BlockVersion(BlockSpan(b).ToArray(), "durable")];
            }
        }

        apply(Bytes.AsSpan((int)offset, (int)length));
        for (long b = first; b <= last; b++)
        {
            var versions = Pending[b];
            if (!versions[^1].Content.AsSpan().SequenceEqual(BlockSpan(b)))
            {
                versions.Add(new BlockVersion(BlockSpan(b).ToArray(), label));
            }
        }
    }

    /// <summary>Everything so far is durable.</summary>
    public void MarkDurable() => Pending.Clear();

    /// <summary>The instance was re-created: it reads as <paramref name="initial"/>, durably.</summary>
    public void Reset(byte[] initial, uint id)
    {
        Bytes = initial;
        Id = id;
        Pending.Clear();
    }

    /// <summary>The contents a block may show after a crash.</summary>
    public IReadOnlyList<BlockVersion> Allowed(long block) =>
        Pending.TryGetValue(block, out var versions) ? versions : [new BlockVersion(BlockSpan(block).ToArray(), "durable")];
}

internal sealed record BlockVersion(byte[] Content, string Label);

/// <summary>Where the store lives, and what is left of it after a kill or a power cut.</summary>
internal interface IStoreMedia : IAsyncDisposable
{
    IBlockDevice Device { get; }

    /// <summary>A new device holding what survives if the process (or the power) died now.</summary>
    IBlockDevice Kill();
}

/// <summary>Memory: a kill keeps every completed write (the store's writes are all durable).</summary>
internal sealed class MemoryMedia(long size) : IStoreMedia
{
    private MemoryDevice _device = new(size);

    public IBlockDevice Device => _device;

    public IBlockDevice Kill() => _device = _device.Clone();

    public ValueTask DisposeAsync() => _device.DisposeAsync();
}

/// <summary>Memory behind a <see cref="YieldingDevice"/>: concurrent requests interleave inside the store's I/O.</summary>
internal sealed class YieldingMemoryMedia : IStoreMedia
{
    private MemoryDevice _memory;
    private YieldingDevice _device;

    public YieldingMemoryMedia(long size)
    {
        _memory = new MemoryDevice(size);
        _device = new YieldingDevice(_memory);
    }

    public IBlockDevice Device => _device;

    public IBlockDevice Kill()
    {
        _memory = _memory.Clone();
        return _device = new YieldingDevice(_memory);
    }

    public ValueTask DisposeAsync() => _device.DisposeAsync();
}

/// <summary>
/// The random workload over several instances of one base in one store, checked against
/// <see cref="InstanceModel"/>s. Every change is applied to the model before it is issued,
/// so a crash image taken in the middle of it is checked against a model that allows it.
/// </summary>
internal sealed class InstanceWorkload : IAsyncDisposable
{
    public const int Block = UpperStore.BlockSize;

    private readonly Random _rng;
    private readonly ContentMode _mode;
    private readonly StoreCreateOptions _options;
    private readonly CacheOptions _cacheOptions;
    private bool _closed;

    private InstanceWorkload(TestBase testBase, IStoreMedia media, Random rng, ContentMode mode, StoreCreateOptions options,
        CacheOptions cacheOptions, InstanceModel[] models)
    {
        _cacheOptions = cacheOptions;
        Base = testBase;
        Media = media;
        _rng = rng;
        _mode = mode;
        _options = options;
        Models = models;
        Exports = new InstanceExport[models.Length];
    }

    public TestBase Base { get; }

    public IStoreMedia Media { get; }

    public UpperStore Store { get; private set; } = null!;

    /// <summary>The write-back cache over <see cref="Store"/>, shared by every export.</summary>
    public WriteBackCache Cache { get; private set; } = null!;

    public InstanceModel[] Models { get; }

    public InstanceExport[] Exports { get; }

    /// <summary>Number of the current operation; operations are logged by number for failure messages.</summary>
    public long Op { get; private set; }

    /// <summary>Every operation so far, by number (index 0 unused).</summary>
    public List<string> Log { get; } = ["(none)"];

    public Dictionary<string, int> Counts { get; } = [];

    /// <summary>Data blocks start here: below are the superblocks and the journal.</summary>
    public long MetadataBytes => (2 + (_options.JournalBlocks ?? 0)) * (long)Block;

    /// <summary>
    /// A store with the instances, served through a write-back cache. Without
    /// <paramref name="cacheOptions"/> nothing moves in the background (crash points stay
    /// reproducible); with them, write-back and checkpoints interleave with the workload.
    /// </summary>
    public static async Task<InstanceWorkload> CreateAsync(TestBase testBase, IStoreMedia media, Random rng, ContentMode mode,
        long journalBlocks, (string Name, long Size)[] instances, CacheOptions? cacheOptions = null)
    {
        var options = new StoreCreateOptions { JournalBlocks = journalBlocks };
        var models = instances.Select((d, i) => new InstanceModel(i + 1, d.Name, testBase.InitialContent(d.Size)) { Rng = new Random(rng.Next()) }).ToArray();
        var workload = new InstanceWorkload(testBase, media, rng, mode, options, cacheOptions ?? CacheOptions.FlushOnly, models);
        await UpperStore.CreateAsync(media.Device, options);
        workload.Store = await UpperStore.OpenAsync(media.Device);
        workload.Cache = new WriteBackCache(workload.Store, workload._cacheOptions);
        foreach (var model in models)
        {
            var instance = await workload.Store.CreateInstanceAsync(model.Name, model.Size, testBase.Identity);
            model.Id = instance.Definition.Id;
            workload.Exports[model.Index - 1] = await InstanceExport.OpenAsync(workload.Cache, instance);
        }

        return workload;
    }

    public string Describe(long op)
    {
        lock (Log)
        {
            return op > 0 && op < Log.Count ? $"#{op} {Log[(int)op]}" : $"#{op} (unknown)";
        }
    }

    /// <summary>One random operation on a random instance or on the whole store, checked where it can be.</summary>
    public Task StepAsync()
    {
        var model = Models[_rng.Next(Models.Length)];
        return StepAsync(model, _rng.Next(1000));
    }

    /// <summary>
    /// One random operation on <paramref name="model"/>'s instance only: these may run concurrently
    /// with those on other instances (never with another on the same one, nor with a global one).
    /// </summary>
    public Task StepOnAsync(InstanceModel model) => StepAsync(model, model.Rng.Next(PerInstanceOps));

    private const int PerInstanceOps = 955;

    private async Task StepAsync(InstanceModel model, int pick)
    {
        var export = Exports[model.Index - 1];
        var rng = model.Rng;
        switch (pick)
        {
            case < 380:
                await WriteAsync(model, export, WriteFlags.None);
                break;
            case < 440:
                await WriteAsync(model, export, WriteFlags.Fua);
                break;
            case < 640:
                await ReadAsync(model, export);
                break;
            case < 690:
                await ZeroAsync(model, export, "trim", rng.Next(4) == 0 ? ZeroFlags.Fua : ZeroFlags.None, trim: true);
                break;
            case < 740:
                await ZeroAsync(model, export, "zero", rng.Next(4) == 0 ? ZeroFlags.Fua : ZeroFlags.None, trim: false);
                break;
            case < 780:
                await ZeroAsync(model, export, "zero-nohole", ZeroFlags.NoHole | (rng.Next(4) == 0 ? ZeroFlags.Fua : ZeroFlags.None), trim: false);
                break;
            case < 800:
                await ZeroAsync(model, export, "zero-fast", ZeroFlags.FastZero, trim: false);
                break;
            case < 810:
                await RefusedFastNoHoleZeroAsync(model, export);
                break;
            case < 950:
                await FlushAsync(model, export);
                break;
            case < PerInstanceOps:
                await RecreateAsync(model);
                break;
            case < 970:
                await CleanReopenAsync();
                break;
            case < 985:
                await KillReopenAsync();
                break;
            default:
                await VerifyAllAsync("full read");
                break;
        }
    }

    /// <summary>A given write through instance <paramref name="index"/> (0-based), model first.</summary>
    public async Task WriteAsync(int index, long offset, byte[] data, WriteFlags flags)
    {
        var model = Models[index];
        long op = Begin($"write{(flags == WriteFlags.Fua ? "-fua" : "")} {model.Name} [{offset}, +{data.Length}) (scripted)");
        model.Change(offset, data.Length, Describe(op), span => data.CopyTo(span));
        await Exports[index].WriteAsync(offset, data, flags);
        if (flags == WriteFlags.Fua)
        {
            model.MarkDurable();
        }
    }

    /// <summary>A given trim of instance <paramref name="index"/> (0-based), model first.</summary>
    public async Task TrimAsync(int index, long offset, long length, WriteFlags flags)
    {
        var model = Models[index];
        long op = Begin($"trim{(flags == WriteFlags.Fua ? "-fua" : "")} {model.Name} [{offset}, +{length}) (scripted)");
        model.Change(offset, length, Describe(op), span => span.Clear());
        await Exports[index].TrimAsync(offset, length, flags);
        if (flags == WriteFlags.Fua)
        {
            model.MarkDurable();
        }
    }

    /// <summary>Reads every instance whole and compares it with its model exactly.</summary>
    public async Task VerifyAllAsync(string why)
    {
        Begin($"{why}: read every instance whole");
        foreach (var model in Models)
        {
            byte[] actual = new byte[model.Size];
            await Exports[model.Index - 1].ReadAsync(0, actual);
            CompareWithModel(model, 0, actual, why);
        }
    }

    /// <summary>Closes cleanly (checked: a failure here fails the test).</summary>
    public async Task CloseAsync()
    {
        Begin("close: dispose exports and store");
        _closed = true;
        foreach (var export in Exports)
        {
            await export.DisposeAsync();
        }

        await Cache.DisposeAsync();
        await Store.DisposeAsync();
        foreach (var model in Models)
        {
            model.MarkDurable();
        }
    }

    /// <summary>Clean-up after a failed test: errors here must not hide the failure.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_closed)
        {
            return;
        }

        _closed = true;
        try
        {
            foreach (var export in Exports)
            {
                if (export is not null)
                {
                    await export.DisposeAsync();
                }
            }

            await Cache.DisposeAsync();
            await Store.DisposeAsync();
        }
        catch (Exception e)
        {
            await TestContext.Out.WriteLineAsync($"(clean-up after failure: {e.GetType().Name}: {e.Message})");
        }
    }

    /// <summary>
    /// Opens the store on a crash image and checks every instance against the models: per block,
    /// one of the contents allowed since the last durable point. With <paramref name="adopt"/>, the
    /// models take what was read as their new durable state and the exports are replaced.
    /// </summary>
    public async Task<UpperStore> CheckRecoveredAsync(IBlockDevice image, string context, bool adopt)
    {
        UpperStore recovered;
        try
        {
            recovered = await UpperStore.OpenAsync(image);
        }
        catch (Exception e)
        {
            throw new AssertionException($"{context}: the store does not open after the crash: {e.GetType().Name}: {e.Message}\n{RecentOps()}", e);
        }

        var names = recovered.Instances.Select(i => i.Name).Order(StringComparer.Ordinal).ToArray();
        var expected = Models.Select(m => m.Name).Order(StringComparer.Ordinal).ToArray();
        var fresh = new InstanceExport?[Models.Length];
        var cache = new WriteBackCache(recovered, _cacheOptions);
        foreach (var model in Models)
        {
            var instance = recovered.Find(model.Name);
            if (instance is null)
            {
                if (model.RecreatingFrom is not null)
                {
                    continue; // deleted, not yet re-created: allowed while the re-create was in flight
                }

                throw new AssertionException($"{context}: instance {model.Name} is missing after recovery (store has: {string.Join(", ", names)})\n{RecentOps()}");
            }

            var export = await InstanceExport.OpenAsync(cache, instance);
            byte[] actual = new byte[model.Size];
            await export.ReadAsync(0, actual);
            bool recreated = model.RecreatingFrom is { } old && instance.Definition.Id != old;
            byte[] initial = recreated ? Base.InitialContent(model.Size) : [];
            if (model.RecreatingFrom is null && instance.Definition.Id != model.Id)
            {
                throw new AssertionException($"{context}: instance {model.Name} has id {instance.Definition.Id} after recovery, expected {model.Id}");
            }

            for (long b = 0; b < model.Blocks; b++)
            {
                var block = actual.AsSpan((int)(b * Block), Block);
                if (recreated)
                {
                    if (!block.SequenceEqual(initial.AsSpan((int)(b * Block), Block)))
                    {
                        throw new AssertionException($"{context}: re-created instance {model.Name} (id {instance.Definition.Id}) block {b} is not the base's: {DescribeBlock(model, b, block)}");
                    }

                    continue;
                }

                var allowed = model.Allowed(b);
                bool ok = false;
                foreach (var version in allowed)
                {
                    if (block.SequenceEqual(version.Content))
                    {
                        ok = true;
                        break;
                    }
                }

                if (!ok)
                {
                    throw new AssertionException(
                        $"{context}: instance {model.Name} block {b} (bytes {b * Block}..{(b + 1) * Block}) reads content it never had since its last durable point.\n" +
                        $"  actual: {DescribeBlock(model, b, block)}\n" +
                        $"  allowed ({allowed.Count}): {string.Join("; ", allowed.Select(v => $"{v.Label} [{DescribeBlock(model, b, v.Content)}]"))}\n{RecentOps()}");
                }
            }

            if (adopt)
            {
                if (recreated)
                {
                    model.Reset(initial, instance.Definition.Id);
                }
                else
                {
                    actual.CopyTo(model.Bytes, 0);
                }

                model.RecreatingFrom = null;
                fresh[model.Index - 1] = export;
            }
            else
            {
                await export.DisposeAsync();
            }
        }

        if (!adopt)
        {
            await cache.DisposeAsync(); // its exports, which only read, are closed
            if (names.Length != expected.Length && Models.All(m => m.RecreatingFrom is null))
            {
                throw new AssertionException($"{context}: the store has instances [{string.Join(", ", names)}], expected [{string.Join(", ", expected)}]");
            }

            return recovered;
        }

        Assert.That(names, Is.EqualTo(expected), $"{context}: instances after recovery");
        Cache = cache;
        for (int i = 0; i < Models.Length; i++)
        {
            Exports[i] = fresh[i]!;
            Models[i].MarkDurable();
        }

        return recovered;
    }

    /// <summary>Names what a block holds: for stamped content, which operations' bytes, base bytes or zeros, in runs.</summary>
    public string DescribeBlock(InstanceModel model, long block, ReadOnlySpan<byte> content)
    {
        if (!content.ContainsAnyExcept((byte)0))
        {
            return "all zeros";
        }

        long start = block * Block;
        if (start < Base.Bytes.Length && content.SequenceEqual(Base.InitialContent(start + Block).AsSpan((int)start, Block)))
        {
            return "the base's block";
        }

        if (_mode == ContentMode.Random)
        {
            byte[] copy = content.ToArray();
            var other = Models.Where(m => m != model && m.Blocks > block && m.BlockSpan(block).SequenceEqual(copy)).Select(m => m.Name).ToList();
            string hash = Convert.ToHexString(SHA256.HashData(content))[..12];
            return $"sha256 {hash}, first bytes {Convert.ToHexString(content[..8])}" +
                (other.Count > 0 ? $", equal to the same block of instance {string.Join(",", other)} now" : "");
        }

        var runs = new List<(int From, int To, string What)>();
        for (int w = 0; w < Block; w += 8)
        {
            long position = start + w;
            ulong word = BinaryPrimitives.ReadUInt64LittleEndian(content[w..]);
            string what;
            if (Stamp.Decode(word, position) is { } s)
            {
                string owner = s.Instance == model.Index ? "" : $" OF INSTANCE {Models.FirstOrDefault(m => m.Index == s.Instance)?.Name ?? s.Instance.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
                what = $"op {Describe(s.Op)}{owner}";
            }
            else if (word == 0)
            {
                what = "zeros";
            }
            else if (position + 8 <= Base.Bytes.Length && content.Slice(w, 8).SequenceEqual(Base.Bytes.AsSpan((int)position, 8)))
            {
                what = "base";
            }
            else
            {
                what = DescribeMixedWord(model, content, w, position);
            }

            if (runs.Count > 0 && runs[^1].What == what)
            {
                runs[^1] = (runs[^1].From, w + 8, what);
            }
            else
            {
                runs.Add((w, w + 8, what));
            }
        }

        var text = new StringBuilder();
        foreach (var (from, to, what) in runs.Take(12))
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"[{from}..{to}) {what}; ");
        }

        if (runs.Count > 12)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"... {runs.Count - 12} more runs");
        }

        return text.ToString();
    }

    /// <summary>
    /// A word that is no whole stamp: the edge of an unaligned write, where each byte is a stamp
    /// byte of a neighbouring word's operation, a base byte or zero — or else unexplained.
    /// </summary>
    private string DescribeMixedWord(InstanceModel model, ReadOnlySpan<byte> content, int w, long position)
    {
        var candidates = new List<(int Instance, long Op)>();
        foreach (int n in new[] { w - 8, w + 8 })
        {
            if (n >= 0 && n + 8 <= content.Length && Stamp.Decode(BinaryPrimitives.ReadUInt64LittleEndian(content[n..]), position + n - w) is { } s)
            {
                candidates.Add(s);
            }
        }

        Span<byte> stamp = stackalloc byte[8];
        var parts = new SortedSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < 8; i++)
        {
            byte actual = content[w + i];
            string? part = null;
            foreach (var (instance, op) in candidates)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(stamp, Stamp.Word(instance, op, position));
                if (stamp[i] == actual)
                {
                    part = $"op {Describe(op)}{(instance == model.Index ? "" : $" OF INSTANCE #{instance}")}";
                    break;
                }
            }

            if (part is null && position + i < Base.Bytes.Length && Base.Bytes[position + i] == actual)
            {
                part = "base";
            }

            part ??= actual == 0 ? "zeros" : null;
            if (part is null)
            {
                return "UNEXPLAINED bytes (garbage or a torn mix)";
            }

            parts.Add(part);
        }

        return "edge word: " + string.Join(" + ", parts);
    }

    public string RecentOps(int count = 12)
    {
        lock (Log)
        {
            return "  recent operations: " + string.Join(" | ", Enumerable.Range(Math.Max(1, Log.Count - count), Math.Min(count, Log.Count - 1)).Select(i => Describe(i)));
        }
    }

    private long Begin(string description)
    {
        lock (Log)
        {
            Op++;
            Log.Add(description);
            string kind = description.Split(' ', ':')[0];
            Counts[kind] = Counts.GetValueOrDefault(kind) + 1;
            return Op;
        }
    }

    private (long Offset, long Length) PickRange(InstanceModel model, int maxBlocks)
    {
        var rng = model.Rng;
        long size = model.Size;
        if (rng.Next(4) == 0)
        {
            // Aligned whole blocks.
            long first = rng.NextInt64(model.Blocks);
            long count = Math.Min(model.Blocks - first, 1 + rng.Next(maxBlocks));
            return (first * Block, count * Block);
        }

        long offset = rng.Next(8) == 0
            ? Math.Max(0, Math.Min(size - 1, Base.Bytes.Length + rng.Next(-3 * Block, 3 * Block))) // around the base's end
            : rng.NextInt64(size);
        long length = 1 + rng.NextInt64(maxBlocks * (long)Block);
        return (offset, Math.Min(length, size - offset));
    }

    private async Task WriteAsync(InstanceModel model, InstanceExport export, WriteFlags flags)
    {
        var (offset, length) = PickRange(model, 3);
        string label = flags == WriteFlags.Fua ? "write-fua" : "write";
        long op = Begin($"{label} {model.Name} [{offset}, +{length})");
        byte[] data = new byte[length];
        if (_mode == ContentMode.Random)
        {
            model.Rng.NextBytes(data);
        }
        else
        {
            Stamp.Fill(data, model.Index, op, offset);
        }

        model.Change(offset, length, Describe(op), span => data.CopyTo(span));
        await export.WriteAsync(offset, data, flags);
        if (flags == WriteFlags.Fua)
        {
            model.MarkDurable();
        }
    }

    private async Task ZeroAsync(InstanceModel model, InstanceExport export, string label, ZeroFlags flags, bool trim)
    {
        var (offset, length) = PickRange(model, model.Rng.Next(5) == 0 ? 40 : 6);
        long op = Begin($"{label}{(flags.HasFlag(ZeroFlags.Fua) ? "-fua" : "")} {model.Name} [{offset}, +{length})");
        // InstanceExport documents trim as zeroing (whole blocks become zero entries, partial edges written with zeros).
        model.Change(offset, length, Describe(op), span => span.Clear());
        if (trim)
        {
            await export.TrimAsync(offset, length, flags.HasFlag(ZeroFlags.Fua) ? WriteFlags.Fua : WriteFlags.None);
        }
        else
        {
            await export.ZeroAsync(offset, length, flags);
        }

        if (flags.HasFlag(ZeroFlags.Fua))
        {
            model.MarkDurable();
        }
    }

    private async Task RefusedFastNoHoleZeroAsync(InstanceModel model, InstanceExport export)
    {
        var (offset, length) = PickRange(model, 6);
        Begin($"zero-fast-nohole {model.Name} [{offset}, +{length}) (must be refused, nothing changed)");
        var e = Assert.ThrowsAsync<ExportException>(async () => await export.ZeroAsync(offset, length, ZeroFlags.FastZero | ZeroFlags.NoHole));
        Assert.That(e!.Error, Is.EqualTo(ExportError.NotSupported));
        byte[] back = new byte[length];
        await export.ReadAsync(offset, back);
        CompareWithModel(model, offset, back, "after a refused fast zero");
    }

    private async Task ReadAsync(InstanceModel model, InstanceExport export)
    {
        var (offset, length) = PickRange(model, 3);
        Begin($"read {model.Name} [{offset}, +{length})");
        byte[] actual = new byte[length];
        await export.ReadAsync(offset, actual);
        CompareWithModel(model, offset, actual, "read");
    }

    private async Task FlushAsync(InstanceModel model, InstanceExport export)
    {
        Begin($"flush {model.Name}");
        await export.FlushAsync();
        model.MarkDurable();
    }

    public async Task CleanReopenAsync()
    {
        Begin("clean-reopen: dispose exports and store, open again");
        for (int i = 0; i < Exports.Length; i++)
        {
            await Exports[i].DisposeAsync();
        }

        await Cache.DisposeAsync();
        await Store.DisposeAsync();
        foreach (var model in Models)
        {
            model.MarkDurable();
        }

        Store = await UpperStore.OpenAsync(Media.Device);
        Cache = new WriteBackCache(Store, _cacheOptions);
        Assert.That(Store.WasClean, Is.True, "a store closed cleanly must open as clean");
        foreach (var model in Models)
        {
            var instance = Store.Find(model.Name) ?? throw new AssertionException($"instance {model.Name} is gone after a clean reopen");
            Assert.That(instance.Definition.Id, Is.EqualTo(model.Id), $"{model.Name}: id after a clean reopen");
            Exports[model.Index - 1] = await InstanceExport.OpenAsync(Cache, instance);
        }

        await VerifyAllAsync("after a clean reopen");
    }

    public async Task KillReopenAsync()
    {
        long op = Begin("kill-reopen: open the store on what a kill leaves, abandon the old one");
        var image = Media.Kill();
        // What the kill takes: every dirty block in the cache. The old exports then close
        // with nothing to write back (what they still write goes to the abandoned device).
        await Cache.AbandonAsync();
        foreach (var export in Exports)
        {
            await export.DisposeAsync();
        }

        // The old store is abandoned without a clean close, as after kill -9.
        Store = await CheckRecoveredAsync(image, $"after kill {Describe(op)}", adopt: true);
        Assert.That(Store.WasClean, Is.False, "a store that was killed must not open as clean");
    }

    private async Task RecreateAsync(InstanceModel model)
    {
        Begin($"recreate {model.Name}: delete it and create it again over the same base");
        await Exports[model.Index - 1].DisposeAsync();
        model.RecreatingFrom = model.Id;
        await Store.DeleteInstanceAsync(model.Name);
        var instance = await Store.CreateInstanceAsync(model.Name, model.Size, Base.Identity);
        model.Reset(Base.InitialContent(model.Size), instance.Definition.Id);
        model.RecreatingFrom = null;
        Exports[model.Index - 1] = await InstanceExport.OpenAsync(Cache, instance);
        byte[] actual = new byte[model.Size];
        await Exports[model.Index - 1].ReadAsync(0, actual);
        CompareWithModel(model, 0, actual, "a re-created instance reads as its base");
    }

    private void CompareWithModel(InstanceModel model, long offset, byte[] actual, string what)
    {
        var expected = model.Bytes.AsSpan((int)offset, actual.Length);
        if (expected.SequenceEqual(actual))
        {
            return;
        }

        int at = expected.CommonPrefixLength(actual);
        long block = (offset + at) / Block;
        var actualBlock = new byte[Block];
        long blockStart = block * Block;
        for (int i = 0; i < Block; i++)
        {
            long p = blockStart + i - offset;
            actualBlock[i] = p >= 0 && p < actual.Length ? actual[p] : model.Bytes[blockStart + i];
        }

        throw new AssertionException(
            $"{what} of {model.Name} [{offset}, +{actual.Length}) differs from the model at byte {offset + at} (block {block}): " +
            $"expected 0x{expected[at]:x2}, read 0x{actual[at]:x2}.\n" +
            $"  read block: {DescribeBlock(model, block, actualBlock)}\n" +
            $"  model block: {DescribeBlock(model, block, model.BlockSpan(block))}\n{RecentOps()}");
    }
}
