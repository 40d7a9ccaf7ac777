using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// The random workload over several instances of one base in one store, checked against
/// <see cref="InstanceModel"/>s. Every change is applied to the model before it is issued,
/// so a crash image taken in the middle of it is checked against a model that allows it.
/// </summary>
internal sealed partial class InstanceWorkload : IAsyncDisposable
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
