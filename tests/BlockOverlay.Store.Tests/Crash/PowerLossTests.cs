using System.Diagnostics;
using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Power loss at every device write of seeded random workloads (DESIGN.md, invariant 5): the store opens,
/// and every instance reads as its last completed commit (or checkpoint, or clean close) plus,
/// per block, possibly later writes — never garbage, never another instance's data; completed
/// creations and deletions hold; no store block is mapped twice and the free count is exact;
/// the store checker finds nothing wrong before recovery; and the recovered store keeps working
/// (a write, a commit and a second crash lose nothing).
/// </summary>
/// <remarks>
/// The workload runs on a <see cref="PowerLossDevice"/> behind a <see cref="CrashPointDevice"/>,
/// which takes a crash image at each write the store makes: <see cref="PowerLossDevice.Crash"/>
/// plus that write lost, whole or torn at sector granularity (a power cut while it is in flight).
/// So one run yields a crash point per write, each checked against the model as it was then.
/// <para>
/// <c>make test</c> checks <see cref="DefaultCrashPoints"/> points (about 20 s on 2 cores).
/// More: <c>BLOCKOVERLAY_CRASH_POINTS=100000</c>. One seed only (to reproduce a failure):
/// <c>BLOCKOVERLAY_CRASH_SEED=n</c>. Failures name the seed, the step, the write and the fate.
/// </para>
/// </remarks>
public sealed class PowerLossTests
{
    private const int Block = CrashTestKit.Block;
    private const long DefaultCrashPoints = 7000;
    private const int StepsPerSeed = 300;

    [Test]
    [Category("Slow")] // left out of make check
    public async Task After_a_power_cut_at_any_write_the_store_opens_and_every_instance_reads_as_committed_or_later()
    {
        long budget = CrashTestKit.EnvironmentCount("BLOCKOVERLAY_CRASH_POINTS", DefaultCrashPoints);
        long tested = 0;
        int seeds = 0;
        var watch = Stopwatch.StartNew();
        foreach (int seed in CrashTestKit.Seeds(first: 1))
        {
            if (tested >= budget)
            {
                break;
            }

            tested += await RunSeedAsync(seed, budget - tested);
            seeds++;
        }

        double seconds = watch.Elapsed.TotalSeconds;
        CrashTestKit.Report($"power loss: {tested} crash points over {seeds} seeds in {seconds:F1} s ({tested / seconds:F0} per second)");
        Assert.That(tested, Is.GreaterThan(0));
    }

    /// <summary>
    /// The same with several instances' workers running at once (group commit, checkpoints racing
    /// commits, freed blocks reused by others while reads are in flight). Each worker's steps are
    /// seeded, but the interleaving is the scheduler's, so a failure names its seed and shows the
    /// state of every worker, and may need a few runs to come back.
    /// </summary>
    [Test]
    [Category("Slow")] // left out of make check
    public async Task With_concurrent_instances_a_power_cut_at_any_write_loses_nothing_committed()
    {
        long budget = CrashTestKit.EnvironmentCount("BLOCKOVERLAY_CRASH_POINTS", DefaultCrashPoints) / 4;
        long tested = 0, racingReads = 0;
        int seeds = 0;
        var watch = Stopwatch.StartNew();
        foreach (int seed in CrashTestKit.Seeds(first: 1001))
        {
            if (tested >= budget)
            {
                break;
            }

            var (points, reads) = await RunConcurrentSeedAsync(seed, budget - tested);
            tested += points;
            racingReads += reads;
            seeds++;
        }

        double seconds = watch.Elapsed.TotalSeconds;
        CrashTestKit.Report($"power loss, concurrent instances: {tested} crash points over {seeds} seeds in {seconds:F1} s " +
                            $"({tested / seconds:F0} per second), {racingReads} reads racing writes and deletes");
        Assert.That(tested, Is.GreaterThan(0));
    }

    /// <summary>
    /// A commit that runs while another thread's checkpoint is in flight must not return before
    /// its writes are durable: here the checkpoint has already taken the instance's map (and
    /// marked it committed) but its own write has not reached the media when the commit returns.
    /// </summary>
    [Test]
    public async Task A_commit_racing_a_checkpoint_is_durable_when_it_returns()
    {
        var media = await CrashTestKit.NewStoreAsync(dataBlocks: 256, journalBlocks: 64);
        var sb = await CrashTestKit.ReadSuperblockAsync(media);
        var device = new PausingDevice(media);
        var store = await UpperStore.OpenAsync(device);
        var x = await store.CreateInstanceAsync("x", 16 * Block, null);
        var expected = new long[16];
        await store.WriteAsync(x, 3, CrashTestKit.Blocks(x.Definition.Id, 3, 1, 1));
        expected[3] = 1;

        // The checkpoint's first write goes to the data region; hold it there.
        var paused = device.PauseNextWrite(sb.DataStart * Block, media.Size);
        var checkpoint = Task.Run(() => store.CheckpointAsync());
        await paused.Arrived.WaitAsync(TimeSpan.FromSeconds(10));

        var commit = store.CommitAsync(x);
        MemoryDevice image;
        if (await Task.WhenAny(commit, Task.Delay(500)) == commit)
        {
            await commit;
            image = media.Clone();   // a crash right after the commit returned
            paused.Release();
        }
        else
        {
            paused.Release();        // the commit waits for the checkpoint: fine
            await commit;
            image = media.Clone();
        }

        await checkpoint;
        await using var reopened = await UpperStore.OpenAsync(image);
        var values = await CrashTestKit.ReadAllAsync(reopened, reopened.Find("x")!, "after a crash right after the commit returned");
        Assert.That(values, Is.EqualTo(expected), "x after a crash right after its commit returned");
    }

    /// <summary>Runs one seed's workload, checking a crash image at each of its writes; returns how many.</summary>
    private static async Task<long> RunSeedAsync(int seed, long limit)
    {
        var shape = new Random(seed);
        var options = new WorkloadOptions { MaxInstances = shape.Next(3, 5), InstanceBlocks = shape.Next(16, 65) };
        long dataBlocks = shape.Next(0, 3) == 0 ? options.MaxInstances * options.InstanceBlocks / 2 : 600;
        long journalBlocks = shape.Next(8, 25);
        var pending = new List<CrashPoint>();
        StoreWorkload workload = null!;
        var power = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks, journalBlocks));
        var device = new CrashPointDevice(power, new Random(seed ^ 0x5EED), (image, index, offset, length, fate) =>
            pending.Add(new CrashPoint(image, index, offset, length, fate, workload.Snapshot(), workload.InProgress, workload.Context)));
        workload = new StoreWorkload(seed, options, device, () => device);
        device.Armed = true;
        long tested = 0;
        await workload.OpenAsync();
        for (int step = 0; step < StepsPerSeed && tested < limit; step++)
        {
            if (step > 0)
            {
                await workload.StepAsync();
            }

            foreach (var point in pending)
            {
                await VerifyAsync(point, thorough: tested % 3 == 0);
                tested++;
            }

            pending.Clear();
        }

        return tested;
    }

    private static async Task<(long Points, long RacingReads)> RunConcurrentSeedAsync(int seed, long limit)
    {
        var shape = new Random(seed);
        int workers = shape.Next(3, 5);
        int instanceBlocks = shape.Next(16, 49);
        long dataBlocks = shape.Next(0, 2) == 0 ? workers * instanceBlocks : 600;
        long journalBlocks = shape.Next(8, 25);
        var pending = new List<ConcurrentCrashPoint>();
        ConcurrentWorkload workload = null!;
        var power = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks, journalBlocks));
        var device = new CrashPointDevice(power, new Random(seed), (image, index, offset, length, fate) =>
            pending.Add(new ConcurrentCrashPoint(image, seed, index, offset, length, fate, workload.Snapshot())))
        {
            YieldSometimes = true,
        };
        var store = await UpperStore.OpenAsync(device);
        workload = new ConcurrentWorkload(seed, store, workers, instanceBlocks);
        device.Armed = true;
        long tested = 0;
        for (int phase = 0; phase < 12 && tested < limit; phase++)
        {
            await workload.RunAsync(steps: 20);
            foreach (var point in pending)
            {
                await VerifyConcurrentAsync(point, thorough: tested % 3 == 0);
                tested++;
            }

            pending.Clear();
        }

        return (tested, workload.RacingReads);
    }

    private static async Task VerifyConcurrentAsync(ConcurrentCrashPoint point, bool thorough)
    {
        string where = $"after a {point.Describe()}";
        await CrashTestKit.AssertChecksCleanAsync(point.Image, where);
        UpperStore store = null!;
        try
        {
            store = await UpperStore.OpenAsync(point.Image);
        }
        catch (Exception e)
        {
            Assert.Fail($"the store does not open {where}\n  {e.GetType().Name}: {e.Message}");
        }

        var recovered = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var slot in point.Slots)
        {
            var instance = store.Find(slot.Name);
            if (instance is null)
            {
                if (slot.Model is not null && slot.InProgress != StepKind.Delete)
                {
                    Assert.Fail($"instance '{slot.Name}' (id {slot.Model.Id}), whose creation completed, is gone {where}");
                }

                continue;
            }

            var values = await CrashTestKit.ReadAllAsync(store, instance, where);
            recovered[slot.Name] = values;
            if (slot.Model is null)
            {
                Assert.That(slot.InProgress, Is.EqualTo(StepKind.Create), $"instance '{slot.Name}' exists; expected none {where}");
                Assert.That(values, Is.All.EqualTo(BlockContent.Base), $"the instance being created {where}");
                continue;
            }

            Assert.That(instance.Definition.Id, Is.EqualTo(slot.Model.Id), $"'{slot.Name}''s id {where}");
            for (int b = 0; b < slot.Model.Blocks; b++)
            {
                if (!slot.MayRead(b, values[b]))
                {
                    Assert.Fail($"{slot.Name} block {b} reads as {BlockContent.Describe(values[b])}, expected {slot.Allowed(b)} {where}");
                }
            }
        }

        Assert.That(store.Instances.Select(i => i.Name), Is.SubsetOf(point.Slots.Select(s => s.Name)), where);
        await CrashTestKit.CheckSpaceAsync(store, point.Image, where, exactFreeCount: true);
        if (thorough)
        {
            await KeepsWorkingAsync(store, point.Image, point.WriteIndex, recovered, where);
        }
    }

    private static async Task VerifyAsync(CrashPoint point, bool thorough)
    {
        await CrashTestKit.AssertChecksCleanAsync(point.Image, $"after a {point.Describe()}");
        UpperStore store = null!;
        try
        {
            store = await UpperStore.OpenAsync(point.Image);
        }
        catch (Exception e)
        {
            Assert.Fail($"the store does not open after a {point.Describe()}\n  {e.GetType().Name}: {e.Message}");
        }

        string where = $"after a {point.Describe()}";
        var recovered = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var instance in store.Instances)
        {
            var values = await CrashTestKit.ReadAllAsync(store, instance, where);
            recovered[instance.Name] = values;
            if (point.Model.TryGetValue(instance.Name, out var model) && instance.Definition.Id == model.Id)
            {
                Assert.That(instance.Blocks, Is.EqualTo(model.Blocks), $"{instance.Name}'s size {where}");
                for (int b = 0; b < model.Blocks; b++)
                {
                    if (!model.MayReadAfterCrash(b, values[b]))
                    {
                        Assert.Fail($"{instance.Name} block {b} reads as {BlockContent.Describe(values[b])}, expected " +
                                    $"{model.AllowedAfterCrash(b)} {where}");
                    }
                }
            }
            else if (point.InProgress is (StepKind.Create, var name) && name == instance.Name && model is null)
            {
                // The creation in flight happened; the new instance has nothing yet.
                Assert.That(values, Is.All.EqualTo(BlockContent.Base), $"the instance being created {where}");
            }
            else
            {
                Assert.Fail($"instance '{instance.Name}' (id {instance.Definition.Id}) exists; expected " +
                            $"{(model is null ? "no such instance" : $"id {model.Id}")} {where}");
            }
        }

        foreach (var model in point.Model.Values)
        {
            if (store.Find(model.Name) is null && point.InProgress != (StepKind.Delete, model.Name))
            {
                Assert.Fail($"instance '{model.Name}' (id {model.Id}), whose creation completed, is gone {where}");
            }
        }

        await CrashTestKit.CheckSpaceAsync(store, point.Image, where, exactFreeCount: true);
        if (thorough)
        {
            await KeepsWorkingAsync(store, point.Image, point.WriteIndex, recovered, where);
        }
    }

    /// <summary>
    /// The recovered store takes a write and a commit per instance, then survives a second power
    /// cut: everything recovered the first time and the new writes read back.
    /// </summary>
    private static async Task KeepsWorkingAsync(UpperStore store, MemoryDevice image, long writeIndex, Dictionary<string, long[]> recovered, string where)
    {
        long serial = 1L << 40;
        foreach (var instance in store.Instances)
        {
            long block = (writeIndex + instance.Definition.Id) % instance.Blocks;
            try
            {
                await store.WriteAsync(instance, block, CrashTestKit.Blocks(instance.Definition.Id, block, 1, ++serial));
            }
            catch (StoreFullException)
            {
                continue;
            }

            recovered[instance.Name][block] = serial;
            await store.CommitAsync(instance);
        }

        where = $"after a second crash right after recovering and committing, {where}";
        var second = image.Clone();
        await CrashTestKit.AssertChecksCleanAsync(second, where);
        UpperStore again = null!;
        try
        {
            again = await UpperStore.OpenAsync(second);
        }
        catch (Exception e)
        {
            Assert.Fail($"the store does not open {where}\n  {e.GetType().Name}: {e.Message}");
        }

        Assert.That(again.Instances.Select(i => i.Name), Is.EquivalentTo(recovered.Keys), $"the instances {where}");
        foreach (var instance in again.Instances)
        {
            var values = await CrashTestKit.ReadAllAsync(again, instance, where);
            Assert.That(values, Is.EqualTo(recovered[instance.Name]), $"'{instance.Name}' {where}");
        }

        await CrashTestKit.CheckSpaceAsync(again, image, where, exactFreeCount: true);
    }
}
