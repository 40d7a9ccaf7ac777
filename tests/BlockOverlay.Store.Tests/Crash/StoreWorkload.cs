using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>What a workload step does.</summary>
internal enum StepKind
{
    Create,
    Delete,
    Write,
    Zero,
    Commit,
    Read,
    Checkpoint,
    CleanReopen,
    KillReopen,
    StaleWrite,
    CommitAllAndCheckSpace,
}

/// <summary>Shape of a random workload.</summary>
internal sealed record WorkloadOptions
{
    /// <summary>Most instances alive at once (names i0..i{n-1} are reused after deletes).</summary>
    public int MaxInstances { get; init; } = 4;

    /// <summary>Largest virtual size in blocks; each instance gets between a quarter of it and all of it.</summary>
    public int InstanceBlocks { get; init; } = 64;

    /// <summary>Kill-reopens and clean reopens are part of the mix.</summary>
    public bool Reopens { get; init; } = true;
}

/// <summary>
/// A seeded random workload over one store, checked against a per-instance model as it goes:
/// create, write (1-8 blocks), zero, commit, read (exact check), delete, explicit checkpoint,
/// clean reopen (close, open the same device: everything is durable), kill-reopen (open what
/// the device holds without closing: each block reads durable or a later write, and that
/// becomes the model), writes through a deleted instance's handle, and "commit everything,
/// then check free space exactly". The model is changed only once a store call completed,
/// so at any moment it describes what a crash may leave (see <see cref="InProgress"/>).
/// </summary>
internal sealed class StoreWorkload
{
    private const int Block = CrashTestKit.Block;
    private readonly Random _rng;
    private readonly WorkloadOptions _options;
    private readonly Func<IBlockDevice> _deviceAfterKill;
    private readonly Dictionary<string, StoreInstance> _handles = [];
    private readonly List<string> _history = [];
    private StoreInstance? _stale;
    private long _checkpointBytes;

    public StoreWorkload(int seed, WorkloadOptions options, IBlockDevice device, Func<IBlockDevice> deviceAfterKill)
    {
        Seed = seed;
        _rng = new Random(seed);
        _options = options;
        Device = device;
        _deviceAfterKill = deviceAfterKill;
    }

    public int Seed { get; }

    public UpperStore Store { get; private set; } = null!;

    public IBlockDevice Device { get; private set; }

    /// <summary>The model: live instances by name, as of the last completed store call.</summary>
    public Dictionary<string, InstanceModel> Live { get; } = new(StringComparer.Ordinal);

    /// <summary>The step being run, and the instance it creates or deletes (a crash may go either way for it).</summary>
    public (StepKind Kind, string? Name)? InProgress { get; private set; }

    public int Step { get; private set; }

    public long Serial { get; private set; }

    public int StoreFullCount { get; private set; }

    public int CheckpointCount { get; private set; }

    public Dictionary<StepKind, int> Counts { get; } = [];

    public string Context => $"seed {Seed}, step {Step}; {CrashTestKit.Trail(_history)}";

    public async Task OpenAsync()
    {
        InProgress = (StepKind.CleanReopen, null);
        Store = await OpenOrFailAsync();
        _checkpointBytes = Store.Counters[WriteReason.Checkpoint];
        InProgress = null;
    }

    public async Task StepAsync()
    {
        Step++;
        var kind = Pick();
        Counts[kind] = Counts.GetValueOrDefault(kind) + 1;
        switch (kind)
        {
            case StepKind.Create:
                await CreateAsync();
                break;
            case StepKind.Delete:
                await DeleteAsync();
                break;
            case StepKind.Write:
                await WriteAsync();
                break;
            case StepKind.Zero:
                Zero();
                break;
            case StepKind.Commit:
                await CommitAsync();
                break;
            case StepKind.Read:
                await ReadAsync();
                break;
            case StepKind.Checkpoint:
                Note("checkpoint");
                InProgress = (kind, null);
                await Store.CheckpointAsync();
                AllDurable();
                break;
            case StepKind.CleanReopen:
                await CleanReopenAsync();
                break;
            case StepKind.KillReopen:
                await KillReopenAsync();
                break;
            case StepKind.StaleWrite:
                await StaleWriteAsync();
                break;
            case StepKind.CommitAllAndCheckSpace:
                await CommitAllAndCheckSpaceAsync();
                break;
        }

        InProgress = null;
        // A checkpoint (explicit, or taken because the journal was full) makes every instance's
        // current state durable.
        long checkpointBytes = Store.Counters[WriteReason.Checkpoint];
        if (checkpointBytes != _checkpointBytes)
        {
            _checkpointBytes = checkpointBytes;
            CheckpointCount++;
            AllDurable();
        }
    }

    /// <summary>A deep copy of the model, for a crash image taken now.</summary>
    public Dictionary<string, InstanceModel> Snapshot() => Live.ToDictionary(p => p.Key, p => p.Value.Clone(), StringComparer.Ordinal);

    private StepKind Pick()
    {
        if (Live.Count == 0)
        {
            return StepKind.Create;
        }

        int roll = _rng.Next(100);
        return roll switch
        {
            < 6 => Live.Count < _options.MaxInstances ? StepKind.Create : StepKind.Write,
            < 8 => Live.Count > 1 ? StepKind.Delete : StepKind.Write,
            < 43 => StepKind.Write,
            < 50 => StepKind.Zero,
            < 64 => StepKind.Commit,
            < 80 => StepKind.Read,
            < 82 => StepKind.Checkpoint,
            < 84 => _options.Reopens ? StepKind.CleanReopen : StepKind.Commit,
            < 87 => _options.Reopens ? StepKind.KillReopen : StepKind.Read,
            < 88 => _stale is null ? StepKind.Write : StepKind.StaleWrite,
            < 91 => StepKind.CommitAllAndCheckSpace,
            _ => StepKind.Write,
        };
    }

    private (InstanceModel Model, StoreInstance Handle) PickInstance()
    {
        var names = Live.Keys.Order(StringComparer.Ordinal).ToList();
        var model = Live[names[_rng.Next(names.Count)]];
        return (model, _handles[model.Name]);
    }

    private (long First, int Count) PickRange(long blocks, int most)
    {
        int count = _rng.Next(1, (int)Math.Min(most, blocks) + 1);
        return (_rng.NextInt64(0, blocks - count + 1), count);
    }

    private void Note(string what)
    {
        _history.Add($"step {Step}: {what}");
        if (_history.Count > 40)
        {
            _history.RemoveAt(0);
        }
    }

    private async Task CreateAsync()
    {
        var name = Enumerable.Range(0, _options.MaxInstances).Select(i => $"i{i}").First(n => !Live.ContainsKey(n));
        long blocks = _rng.Next(Math.Max(1, _options.InstanceBlocks / 4), _options.InstanceBlocks + 1);
        Note($"create {name} ({blocks} blocks)");
        InProgress = (StepKind.Create, name);
        var handle = await Store.CreateInstanceAsync(name, blocks * Block, null);
        _handles[name] = handle;
        Live[name] = new InstanceModel(name, handle.Definition.Id, blocks);
        Note($"  = id {handle.Definition.Id}");
    }

    private async Task DeleteAsync()
    {
        var (model, handle) = PickInstance();
        Note($"delete {model.Name} (id {model.Id})");
        InProgress = (StepKind.Delete, model.Name);
        await Store.DeleteInstanceAsync(model.Name);
        Live.Remove(model.Name);
        _handles.Remove(model.Name);
        _stale = handle;
    }

    private async Task WriteAsync()
    {
        var (model, handle) = PickInstance();
        var (first, count) = PickRange(model.Blocks, 8);
        long serial = Serial + 1;
        Serial += count;
        Note($"write {model.Name} blocks {first}+{count} = #{serial}..#{serial + count - 1}");
        long free = Store.FreeBlocks;
        InProgress = (StepKind.Write, model.Name);
        try
        {
            await Store.WriteAsync(handle, first, CrashTestKit.Blocks(model.Id, first, count, serial));
        }
        catch (StoreFullException)
        {
            Note("  = store full");
            StoreFullCount++;
            Assert.That(Store.FreeBlocks, Is.EqualTo(free), $"a refused write changes no free space; {Context}");
            return;
        }

        for (int i = 0; i < count; i++)
        {
            model.Set(first + i, serial + i);
        }
    }

    private void Zero()
    {
        var (model, handle) = PickInstance();
        var (first, count) = PickRange(model.Blocks, 16);
        Note($"zero {model.Name} blocks {first}+{count}");
        Store.Zero(handle, first, count);
        for (int i = 0; i < count; i++)
        {
            model.Set(first + i, BlockContent.Zero);
        }
    }

    private async Task CommitAsync()
    {
        var (model, handle) = PickInstance();
        Note($"commit {model.Name}");
        InProgress = (StepKind.Commit, model.Name);
        await Store.CommitAsync(handle);
        model.MakeDurable();
    }

    private async Task ReadAsync()
    {
        var (model, handle) = PickInstance();
        var (first, count) = PickRange(model.Blocks, 16);
        Note($"read {model.Name} blocks {first}+{count}");
        var values = await CrashTestKit.ReadValuesAsync(Store, handle, first, count, Context);
        for (int i = 0; i < count; i++)
        {
            if (values[i] != model.Current[first + i])
            {
                Assert.Fail($"{model.Name} block {first + i} reads as {BlockContent.Describe(values[i])}, " +
                            $"expected {BlockContent.Describe(model.Current[first + i])}; {Context}");
            }
        }
    }

    private async Task StaleWriteAsync()
    {
        var handle = _stale!;
        long free = Store.FreeBlocks;
        Note($"write through the deleted handle of {handle.Name} (id {handle.Definition.Id})");
        try
        {
            await Store.WriteAsync(handle, 0, CrashTestKit.Blocks(handle.Definition.Id, 0, 1, ++Serial));
            Assert.Fail($"a write to a deleted instance succeeded; {Context}");
        }
        catch (InstanceException)
        {
        }
        catch (StoreFullException)
        {
        }

        Assert.That(Store.FreeBlocks, Is.EqualTo(free), $"a write to a deleted instance holds no space; {Context}");
    }

    private async Task CommitAllAndCheckSpaceAsync()
    {
        Note("commit every instance, check free space");
        foreach (var model in Live.Values.ToList())
        {
            InProgress = (StepKind.Commit, model.Name);
            await Store.CommitAsync(_handles[model.Name]);
            model.MakeDurable();
        }

        InProgress = null;
        await CrashTestKit.CheckSpaceAsync(Store, Device, Context, exactFreeCount: true);
    }

    private async Task CleanReopenAsync()
    {
        Note("clean close, reopen");
        InProgress = (StepKind.CleanReopen, null);
        await Store.DisposeAsync();
        AllDurable();
        Store = await OpenOrFailAsync();
        _checkpointBytes = Store.Counters[WriteReason.Checkpoint];
        _stale = null;
        Assert.That(Store.WasClean, Is.True, $"a closed store opens as clean; {Context}");
        await RebindAsync(crashed: false);
    }

    private async Task KillReopenAsync()
    {
        Note("kill, reopen");
        InProgress = (StepKind.KillReopen, null);
        Device = _deviceAfterKill();
        Store = await OpenOrFailAsync();
        _checkpointBytes = Store.Counters[WriteReason.Checkpoint];
        _stale = null;
        Assert.That(Store.WasClean, Is.False, $"a killed store opens as not clean; {Context}");
        await RebindAsync(crashed: true);
        await CrashTestKit.CheckSpaceAsync(Store, Device, Context, exactFreeCount: true);
    }

    private async Task<UpperStore> OpenOrFailAsync()
    {
        // What a crash (or a clean close) left checks clean before recovery touches it.
        await CrashTestKit.AssertChecksCleanAsync(Device, $"before reopening; {Context}");
        try
        {
            return await UpperStore.OpenAsync(Device);
        }
        catch (Exception e) when (e is not AssertionException)
        {
            Assert.Fail($"the store does not reopen: {e.GetType().Name}: {e.Message}; {Context}");
            throw;
        }
    }

    /// <summary>After a reopen: the same instances, same ids, and every block as the model allows.</summary>
    private async Task RebindAsync(bool crashed)
    {
        var names = Store.Instances.Select(i => i.Name).Order(StringComparer.Ordinal).ToList();
        Assert.That(names, Is.EqualTo(Live.Keys.Order(StringComparer.Ordinal).ToList()), $"the instances after a reopen; {Context}");
        _handles.Clear();
        foreach (var model in Live.Values)
        {
            var handle = Store.Find(model.Name)!;
            Assert.That(handle.Definition.Id, Is.EqualTo(model.Id), $"{model.Name}'s id after a reopen; {Context}");
            Assert.That(handle.Blocks, Is.EqualTo(model.Blocks), $"{model.Name}'s size after a reopen; {Context}");
            _handles[model.Name] = handle;
            var values = await CrashTestKit.ReadAllAsync(Store, handle, Context);
            for (int b = 0; b < model.Blocks; b++)
            {
                bool ok = crashed ? model.MayReadAfterCrash(b, values[b]) : values[b] == model.Current[b];
                if (!ok)
                {
                    Assert.Fail($"after a {(crashed ? "kill" : "clean close")} and reopen, {model.Name} block {b} reads as " +
                                $"{BlockContent.Describe(values[b])}, expected " +
                                $"{(crashed ? model.AllowedAfterCrash(b) : BlockContent.Describe(model.Current[b]))}; {Context}");
                }
            }

            model.Recovered(values);
        }
    }

    private void AllDurable()
    {
        foreach (var model in Live.Values)
        {
            model.MakeDurable();
        }
    }
}
