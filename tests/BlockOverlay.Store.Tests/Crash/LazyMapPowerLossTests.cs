using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Power loss at every device write with lazy maps, over generations: each generation opens the
/// store a crash left (reading no map but those replay needs), changes a few instances (writes,
/// quotas, deletes, creates; most instances are never opened in it), checkpoints now and then
/// (on request and when the small journal fills) and is cut at every write. Every cut must check
/// clean, open with most maps unloaded, read every instance exactly as committed, and count free
/// space exactly (nothing leaked, nothing free that a map names); one cut, chosen at random, is
/// where the next generation starts. So instances stay unloaded across several crashes and
/// checkpoints, some are loaded only by replay, and some first after it.
/// </summary>
public sealed class LazyMapPowerLossTests
{
    private const int Block = UpperStore.BlockSize;
    private const int Instances = 130; // three groups of 64
    private const int Blocks = 8;
    private const int Generations = 3;

    [TestCase(1)]
    [TestCase(2)]
    public async Task Across_crashes_maps_never_loaded_or_loaded_only_after_replay_lose_nothing_and_leak_nothing(int seed)
    {
        var rng = new Random(seed);
        var (current, model) = await FirstGenerationAsync();
        int checkedPoints = 0;
        for (int generation = 1; generation <= Generations; generation++)
        {
            var points = new List<(MemoryDevice Image, Model Model, string When)>();
            string step = "opening";
            var power = new PowerLossDevice(current);
            var device = new CrashPointDevice(power, new Random((seed * 100) + generation), (image, index, _, _, fate) =>
                points.Add((image, model.Copy(), $"generation {generation}, write {index} ({fate}) during {step}")));
            var store = await UpperStore.OpenAsync(device);
            Assert.That(store.Instances.Count(i => i.IsLoaded), Is.LessThan(model.Values.Count / 3), $"maps loaded at open, generation {generation}");
            device.Armed = true;
            for (int s = 0; s < 40; s++)
            {
                var names = model.Values.Keys.Order(StringComparer.Ordinal).ToList();
                string name = names[rng.Next(names.Count)];
                int what = rng.Next(20);
                if (what < 9)
                {
                    int b = rng.Next(Blocks);
                    long serial = model.NextSerial++;
                    step = $"step {s}: a write and commit of {name} block {b}";
                    var x = store.Find(name)!;
                    model.Maybe = (name, b, serial);
                    await store.WriteAsync(x, b, CrashTestKit.Blocks(x.Definition.Id, b, 1, serial));
                    await store.CommitAsync(x);
                    model.Values[name][b] = serial;
                    model.Maybe = null;
                }
                else if (what < 13)
                {
                    step = $"step {s}: a checkpoint";
                    await store.CheckpointAsync();
                }
                else if (what < 15)
                {
                    long quota = rng.Next(1, 64) * (long)Block;
                    step = $"step {s}: setting {name}'s quota";
                    model.MaybeQuota = (name, quota);
                    await store.SetQuotaAsync(name, quota);
                    model.Quota[name] = quota;
                    model.MaybeQuota = null;
                }
                else if (what < 17)
                {
                    step = $"step {s}: deleting {name}";
                    model.Deleting = name;
                    await store.DeleteInstanceAsync(name);
                    model.Values.Remove(name);
                    model.Quota.Remove(name);
                    model.Deleting = null;
                }
                else
                {
                    string made = $"g{generation}s{s}";
                    step = $"step {s}: creating {made}";
                    model.Creating = made;
                    var x = await store.CreateInstanceAsync(made, Blocks * Block, null);
                    long serial = model.NextSerial++;
                    await store.WriteAsync(x, 3, CrashTestKit.Blocks(x.Definition.Id, 3, 1, serial));
                    await store.CommitAsync(x);
                    model.Values[made] = new long[Blocks];
                    model.Values[made][3] = serial;
                    model.Quota[made] = 0;
                    model.Creating = null;
                }
            }

            device.Armed = false;
            Assert.That(points, Has.Count.GreaterThan(40), $"crash points of generation {generation}");
            int next = rng.Next(points.Count);
            for (int p = 0; p < points.Count; p++)
            {
                var (image, expected, when) = points[p];
                await VerifyAsync(p == next ? image.Clone() : image, expected, $"after a power cut at {when} (seed {seed})");
            }

            checkedPoints += points.Count;
            (current, model) = (points[next].Image, await ResolveAsync(points[next].Image.Clone(), points[next].Model));
        }

        TestContext.Out.WriteLine($"{checkedPoints} crash points checked over {Generations} generations");
    }

    /// <summary>Every instance with data and a checkpoint; then a few commits the journal alone holds, and a crash.</summary>
    private static async Task<(MemoryDevice Image, Model Model)> FirstGenerationAsync()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 3000, journalBlocks: 16);
        var model = new Model();
        await using var store = await UpperStore.OpenAsync(media);
        for (int i = 0; i < Instances; i++)
        {
            var x = await store.CreateInstanceAsync($"i{i:D3}", Blocks * Block, null);
            model.Values[x.Name] = new long[Blocks];
            model.Quota[x.Name] = 0;
            if (i % 4 != 3)
            {
                long serial = model.NextSerial++;
                await store.WriteAsync(x, i % Blocks, CrashTestKit.Blocks(x.Definition.Id, i % Blocks, 1, serial));
                await store.CommitAsync(x);
                model.Values[x.Name][i % Blocks] = serial;
            }
        }

        await store.CheckpointAsync();
        foreach (int i in new[] { 5, 70, 71, 129 })
        {
            var x = store.Find($"i{i:D3}")!;
            long serial = model.NextSerial++;
            await store.WriteAsync(x, 7, CrashTestKit.Blocks(x.Definition.Id, 7, 1, serial));
            await store.CommitAsync(x);
            model.Values[x.Name][7] = serial;
        }

        return (media.Clone(), model);
    }

    private static async Task VerifyAsync(MemoryDevice image, Model expected, string where)
    {
        await CrashTestKit.AssertChecksCleanAsync(image, where);
        await using var store = await UpperStore.OpenAsync(image);
        Assert.That(store.Instances.Count(i => i.IsLoaded), Is.LessThan(expected.Values.Count / 3), $"maps loaded at open {where}");
        foreach (var (name, blocks) in expected.Values)
        {
            if (store.Find(name) is not { } x)
            {
                Assert.That(name, Is.EqualTo(expected.Deleting), $"'{name}' is gone {where}");
                continue;
            }

            var values = await CrashTestKit.ReadAllAsync(store, x, where);
            if (expected.Maybe is ({ } n, int b, long serial) && n == name && values[b] == serial)
            {
                values[b] = blocks[b]; // the write in flight: old or new
            }

            Assert.That(values, Is.EqualTo(blocks), $"'{name}' {where}");
            long quota = x.Definition.Quota;
            Assert.That(quota == expected.Quota[name] || expected.MaybeQuota == (name, quota), $"'{name}' has quota {quota} {where}");
        }

        var unknown = store.Instances.Select(i => i.Name).Where(n => !expected.Values.ContainsKey(n)).ToList();
        Assert.That(unknown, Is.Empty.Or.EqualTo(new[] { expected.Creating }), $"instances nobody made {where}");
        await CrashTestKit.CheckSpaceAsync(store, image, where, exactFreeCount: true);
    }

    /// <summary>What the chosen cut holds where the model allows two answers, read from a copy (the next generation opens the cut itself).</summary>
    private static async Task<Model> ResolveAsync(MemoryDevice copy, Model model)
    {
        await using var store = await UpperStore.OpenAsync(copy);
        var resolved = model.Copy();
        if (model.Maybe is ({ } name, int b, long _) && store.Find(name) is { } x)
        {
            resolved.Values[name][b] = (await CrashTestKit.ReadValuesAsync(store, x, b, 1, "resolving"))[0];
        }

        if (model.MaybeQuota is ({ } quotaOf, long _) && store.Find(quotaOf) is { } q)
        {
            resolved.Quota[quotaOf] = q.Definition.Quota;
        }

        if (model.Deleting is { } deleting && store.Find(deleting) is null)
        {
            resolved.Values.Remove(deleting);
            resolved.Quota.Remove(deleting);
        }

        if (model.Creating is { } creating && store.Find(creating) is { } c)
        {
            resolved.Values[creating] = await CrashTestKit.ReadAllAsync(store, c, "resolving");
            resolved.Quota[creating] = 0;
        }

        (resolved.Maybe, resolved.MaybeQuota, resolved.Deleting, resolved.Creating) = (null, null, null, null);
        return resolved;
    }

    /// <summary>Each instance's blocks and quota as committed; at most one write, quota, delete or create in flight.</summary>
    private sealed class Model
    {
        public Dictionary<string, long[]> Values { get; private init; } = [];

        public Dictionary<string, long> Quota { get; private init; } = [];

        public (string Name, int Block, long Serial)? Maybe { get; set; }

        public (string Name, long Quota)? MaybeQuota { get; set; }

        public string? Deleting { get; set; }

        public string? Creating { get; set; }

        public long NextSerial { get; set; } = 1;

        public Model Copy() => new()
        {
            Values = Values.ToDictionary(p => p.Key, p => p.Value.ToArray()),
            Quota = new Dictionary<string, long>(Quota),
            Maybe = Maybe,
            MaybeQuota = MaybeQuota,
            Deleting = Deleting,
            Creating = Creating,
            NextSerial = NextSerial,
        };
    }
}
