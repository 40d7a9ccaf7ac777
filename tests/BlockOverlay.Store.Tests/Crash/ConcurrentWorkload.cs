namespace BlockOverlay.Store.Tests.Crash;

/// <summary>One instance name driven by one worker, and its model; the lock guards the model only.</summary>
internal sealed class Slot(string name)
{
    public string Name { get; } = name;

    public Lock Gate { get; } = new();

    /// <summary>The live instance's model; null while there is none.</summary>
    public InstanceModel? Model { get; set; }

    public StoreInstance? Handle { get; set; }

    public StepKind? InProgress { get; set; }

    /// <summary>
    /// Values of the write or zeroing in flight: another thread's checkpoint may catch them
    /// mapped before the call returns, so a crash may show them.
    /// </summary>
    public List<(long Block, long Value)> Pending { get; } = [];

    public SlotSnapshot Snapshot()
    {
        lock (Gate)
        {
            return new SlotSnapshot(Name, Model?.Clone(), InProgress, [.. Pending]);
        }
    }
}

/// <summary>A slot as it was when a crash image was taken.</summary>
internal sealed record SlotSnapshot(string Name, InstanceModel? Model, StepKind? InProgress, List<(long Block, long Value)> Pending)
{
    public bool MayRead(long block, long value) => Model!.MayReadAfterCrash(block, value) || Pending.Contains((block, value));

    public string Allowed(long block) =>
        string.Join(" or ", new[] { Model!.AllowedAfterCrash(block) }.Concat(Pending.Where(p => p.Block == block).Select(p => BlockContent.Describe(p.Value))));
}

/// <summary>
/// Several workers at once, one per instance name, each running its own seeded random steps:
/// write, zero, commit, read (exact), checkpoint (store-wide), delete and re-create. Commits
/// group, checkpoints race commits, and freed blocks are reused by other instances while
/// reads are in flight. Each slot's model changes only after a store call completed, and
/// under the slot's lock, so a crash image taken inside a device write together with every
/// slot's snapshot is consistent: whatever the snapshot calls durable is on the image.
/// </summary>
internal sealed class ConcurrentWorkload
{
    private const int Block = CrashTestKit.Block;
    private readonly UpperStore _store;
    private readonly int _instanceBlocks;
    private readonly Random[] _rngs;
    private long _serial;

    public ConcurrentWorkload(int seed, UpperStore store, int workers, int instanceBlocks)
    {
        Seed = seed;
        _store = store;
        _instanceBlocks = instanceBlocks;
        Slots = [.. Enumerable.Range(0, workers).Select(i => new Slot($"c{i}"))];
        _rngs = [.. Enumerable.Range(0, workers).Select(i => new Random((seed * 31) + i))];
    }

    public int Seed { get; }

    public IReadOnlyList<Slot> Slots { get; }

    public SlotSnapshot[] Snapshot() => [.. Slots.Select(s => s.Snapshot())];

    /// <summary>Reads done by the second readers (see <see cref="RunAsync"/>).</summary>
    public long RacingReads => Interlocked.Read(ref _racingReads);

    private long _racingReads;

    /// <summary>
    /// Every worker runs <paramref name="steps"/> steps, all at once; meanwhile a second reader
    /// per instance (another connection of it) reads random ranges while its worker writes,
    /// zeroes and deletes: each block must be this instance's own data, base or zeros (never
    /// another instance's, never garbage), whatever it raced with.
    /// </summary>
    public async Task RunAsync(int steps)
    {
        using var stop = new CancellationTokenSource();
        var readers = Slots.Select((slot, i) => Task.Run(() => ReadAlongAsync(slot, new Random(Seed + (1000 * i)), stop.Token))).ToList();
        try
        {
            await Task.WhenAll(Slots.Select((slot, i) => Task.Run(() => WorkAsync(slot, _rngs[i], steps))));
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(readers);
        }
    }

    private async Task ReadAlongAsync(Slot slot, Random rng, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var handle = slot.Handle;
            if (handle is null)
            {
                await Task.Yield();
                continue;
            }

            int count = rng.Next(1, (int)Math.Min(16, handle.Blocks) + 1);
            long first = rng.NextInt64(0, handle.Blocks - count + 1);
            await CrashTestKit.ReadValuesAsync(_store, handle, first, count, $"concurrent seed {Seed}, a second reader of {slot.Name}");
            Interlocked.Increment(ref _racingReads);
            if (rng.Next(32) == 0)
            {
                await Task.Delay(1, CancellationToken.None);   // leave the cores to the workers now and then
            }
        }
    }

    private async Task WorkAsync(Slot slot, Random rng, int steps)
    {
        for (int step = 0; step < steps; step++)
        {
            if (slot.Model is null)
            {
                await CreateAsync(slot, rng);
                continue;
            }

            int roll = rng.Next(100);
            switch (roll)
            {
                case < 45:
                    await WriteAsync(slot, rng);
                    break;
                case < 53:
                    Zero(slot, rng);
                    break;
                case < 73:
                    await CommitAsync(slot);
                    break;
                case < 93:
                    await ReadAsync(slot, rng);
                    break;
                case < 96:
                    Begin(slot, StepKind.Checkpoint);
                    await _store.CheckpointAsync();
                    End(slot);
                    break;
                default:
                    await DeleteAsync(slot);
                    break;
            }
        }
    }

    private static void Begin(Slot slot, StepKind kind)
    {
        lock (slot.Gate)
        {
            slot.InProgress = kind;
        }
    }

    private static void End(Slot slot)
    {
        lock (slot.Gate)
        {
            slot.InProgress = null;
            slot.Pending.Clear();
        }
    }

    private async Task CreateAsync(Slot slot, Random rng)
    {
        long blocks = rng.Next(Math.Max(1, _instanceBlocks / 4), _instanceBlocks + 1);
        Begin(slot, StepKind.Create);
        var handle = await _store.CreateInstanceAsync(slot.Name, blocks * Block, null);
        lock (slot.Gate)
        {
            slot.Handle = handle;
            slot.Model = new InstanceModel(slot.Name, handle.Definition.Id, blocks);
        }

        End(slot);
    }

    private async Task DeleteAsync(Slot slot)
    {
        Begin(slot, StepKind.Delete);
        await _store.DeleteInstanceAsync(slot.Name);
        lock (slot.Gate)
        {
            slot.Model = null;
            slot.Handle = null;
        }

        End(slot);
    }

    private async Task WriteAsync(Slot slot, Random rng)
    {
        var model = slot.Model!;
        int count = rng.Next(1, (int)Math.Min(8, model.Blocks) + 1);
        long first = rng.NextInt64(0, model.Blocks - count + 1);
        long serial = Interlocked.Add(ref _serial, count) - count + 1;
        lock (slot.Gate)
        {
            slot.InProgress = StepKind.Write;
            for (int i = 0; i < count; i++)
            {
                slot.Pending.Add((first + i, serial + i));
            }
        }

        try
        {
            await _store.WriteAsync(slot.Handle!, first, CrashTestKit.Blocks(model.Id, first, count, serial));
        }
        catch (StoreFullException)
        {
            End(slot);
            return;
        }

        lock (slot.Gate)
        {
            for (int i = 0; i < count; i++)
            {
                model.Set(first + i, serial + i);
            }
        }

        End(slot);
    }

    private void Zero(Slot slot, Random rng)
    {
        var model = slot.Model!;
        int count = rng.Next(1, (int)Math.Min(16, model.Blocks) + 1);
        long first = rng.NextInt64(0, model.Blocks - count + 1);
        lock (slot.Gate)
        {
            slot.InProgress = StepKind.Zero;
            for (int i = 0; i < count; i++)
            {
                slot.Pending.Add((first + i, BlockContent.Zero));
            }
        }

        _store.Zero(slot.Handle!, first, count);
        lock (slot.Gate)
        {
            for (int i = 0; i < count; i++)
            {
                model.Set(first + i, BlockContent.Zero);
            }
        }

        End(slot);
    }

    private async Task CommitAsync(Slot slot)
    {
        Begin(slot, StepKind.Commit);
        await _store.CommitAsync(slot.Handle!);
        lock (slot.Gate)
        {
            slot.Model!.MakeDurable();
        }

        End(slot);
    }

    private async Task ReadAsync(Slot slot, Random rng)
    {
        var model = slot.Model!;
        int count = rng.Next(1, (int)Math.Min(16, model.Blocks) + 1);
        long first = rng.NextInt64(0, model.Blocks - count + 1);
        string context = $"concurrent seed {Seed}, worker {slot.Name}";
        var values = await CrashTestKit.ReadValuesAsync(_store, slot.Handle!, first, count, context);
        for (int i = 0; i < count; i++)
        {
            if (values[i] != model.Current[first + i])
            {
                Assert.Fail($"{slot.Name} block {first + i} reads as {BlockContent.Describe(values[i])}, " +
                            $"expected {BlockContent.Describe(model.Current[first + i])}; {context}");
            }
        }
    }
}
