using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Power loss at every device write while one instance among many is busy, with incremental
/// checkpoints (taken on request and when the small journal fills) racing nothing but that
/// instance, and instances created and deleted meanwhile: after every crash point the store
/// checks clean, opens, the busy instance reads as its last completed commit or later, every
/// idle instance reads exactly as it was, and free space is exact (nothing leaked).
/// </summary>
public sealed class ManyInstancesPowerLossTests
{
    private const int Block = UpperStore.BlockSize;
    private const int Idle = 150;        // three groups of 64
    private const int BusyBlocks = 32;

    [TestCase(1)]
    [TestCase(2)]
    public async Task With_one_busy_instance_among_many_a_power_cut_at_any_write_loses_nothing_committed(int seed)
    {
        var rng = new Random(seed);
        var power = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks: 3000, journalBlocks: 12));
        var points = new List<(MemoryDevice Image, Model Model, string When)>();
        var model = new Model();
        string step = "setting up";
        var device = new CrashPointDevice(power, new Random(seed ^ 0x5EED), (image, index, _, _, fate) =>
            points.Add((image, model.Copy(), $"write {index} ({fate}) during {step}")));
        var store = await UpperStore.OpenAsync(device);
        for (int i = 0; i < Idle; i++)
        {
            var x = await store.CreateInstanceAsync($"idle{i}", 8 * Block, null);
            model.Idle[x.Name] = new long[8];
            if (i % 3 == 0)
            {
                await store.WriteAsync(x, i % 8, CrashTestKit.Blocks(x.Definition.Id, i % 8, 1, 1000 + i));
                await store.CommitAsync(x);
                model.Idle[x.Name][i % 8] = 1000 + i;
            }
        }

        var busy = await store.CreateInstanceAsync("busy", BusyBlocks * Block, null);
        await store.CheckpointAsync();
        device.Armed = true;
        long serial = 1;
        int created = 0;
        for (int s = 0; s < 60; s++)
        {
            int what = rng.Next(10);
            if (what < 7)
            {
                step = $"step {s}: writes and a commit of busy";
                for (int w = rng.Next(1, 4); w > 0; w--)
                {
                    int b = rng.Next(BusyBlocks);
                    await store.WriteAsync(busy, b, CrashTestKit.Blocks(busy.Definition.Id, b, 1, ++serial));
                    model.Written(b, serial);
                }

                await store.CommitAsync(busy);
                model.Committed();
            }
            else if (what < 9)
            {
                step = $"step {s}: a checkpoint";
                await store.CheckpointAsync();
            }
            else if (created > 0 && rng.Next(2) == 0)
            {
                string name = $"new{created - 1}";
                step = $"step {s}: deleting {name}";
                model.Deleting = name;
                await store.DeleteInstanceAsync(name);
                model.Idle.Remove(name);
                model.Deleting = null;
                created--;
            }
            else
            {
                string name = $"new{created}";
                step = $"step {s}: creating {name}";
                model.Creating = name;
                var x = await store.CreateInstanceAsync(name, 8 * Block, null);
                await store.WriteAsync(x, 1, CrashTestKit.Blocks(x.Definition.Id, 1, 1, ++serial));
                await store.CommitAsync(x);
                model.Idle[name] = new long[8];
                model.Idle[name][1] = serial;
                model.Creating = null;
                created++;
            }
        }

        device.Armed = false;
        await store.DisposeAsync();
        Assert.That(points, Has.Count.GreaterThan(100), "crash points");
        foreach (var (image, expected, when) in points)
        {
            await VerifyAsync(image, expected, $"after a power cut at {when} (seed {seed})");
        }

        TestContext.Out.WriteLine($"{points.Count} crash points checked");
    }

    private static async Task VerifyAsync(MemoryDevice image, Model expected, string where)
    {
        await CrashTestKit.AssertChecksCleanAsync(image, where);
        await using var store = await UpperStore.OpenAsync(image);
        var values = await CrashTestKit.ReadAllAsync(store, store.Find("busy")!, where);
        for (int b = 0; b < BusyBlocks; b++)
        {
            if (!expected.Busy[b].Contains(values[b]))
            {
                Assert.Fail($"busy block {b} reads as {BlockContent.Describe(values[b])}, expected one of " +
                            $"{string.Join(", ", expected.Busy[b].Select(BlockContent.Describe))} {where}");
            }
        }

        foreach (var (name, blocks) in expected.Idle)
        {
            if (store.Find(name) is not { } x)
            {
                Assert.That(name, Is.EqualTo(expected.Deleting), $"'{name}' is gone {where}");
                continue;
            }

            Assert.That(await CrashTestKit.ReadAllAsync(store, x, where), Is.EqualTo(blocks), $"'{name}' {where}");
        }

        var names = store.Instances.Select(i => i.Name).Where(n => n != "busy" && !expected.Idle.ContainsKey(n)).ToList();
        Assert.That(names, Is.Empty.Or.EqualTo(new[] { expected.Creating }), $"instances nobody made {where}");
        await CrashTestKit.CheckSpaceAsync(store, image, where, exactFreeCount: true);
    }

    /// <summary>What each block may read after a crash: busy's value at its last completed commit or any written since; idle instances exactly.</summary>
    private sealed class Model
    {
        public List<long>[] Busy { get; private init; } = [.. Enumerable.Range(0, BusyBlocks).Select(_ => new List<long> { BlockContent.Base })];

        public Dictionary<string, long[]> Idle { get; private init; } = [];

        public string? Creating { get; set; }

        public string? Deleting { get; set; }

        public void Written(int block, long serial) => Busy[block].Add(serial);

        /// <summary>A commit completed: each block's last value is the one it holds from now on.</summary>
        public void Committed()
        {
            foreach (var values in Busy)
            {
                values.RemoveRange(0, values.Count - 1);
            }
        }

        public Model Copy() => new()
        {
            Busy = [.. Busy.Select(v => v.ToList())],
            Idle = Idle.ToDictionary(p => p.Key, p => p.Value.ToArray()),
            Creating = Creating,
            Deleting = Deleting,
        };
    }
}
