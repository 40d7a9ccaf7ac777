using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Model-based tests: thousands of seeded random steps (create, write, zero, commit, read,
/// delete, checkpoint, clean reopen, kill-reopen) on a few small instances over a small
/// journal, so checkpoints and journal wraps happen all the time; every read is checked
/// against a per-instance model, and every reopen against what the model says may survive.
/// </summary>
/// <remarks>
/// A kill-reopen opens a copy of the device without closing the store: a memory device loses
/// nothing, so this is kill -9 after every completed write. Each block must then read as its
/// state at the instance's last commit (or checkpoint, or clean close) or as one of the values
/// it took after that, and never as anything else. A clean reopen must give back everything.
/// To reproduce a failure, run the test case of the seed in the message.
/// </remarks>
public sealed class StoreModelTests
{
    [TestCase(1, 4, 64, 600)]
    [TestCase(2, 3, 64, 600)]
    [TestCase(3, 4, 32, 600)]
    [TestCase(4, 4, 64, 160)]   // tight: the store fills up now and then
    [TestCase(5, 3, 48, 100)]   // tighter still
    [TestCase(6, 4, 64, 1000)]
    public async Task Random_steps_match_the_model_through_commits_checkpoints_and_reopens(
        int seed, int instances, int instanceBlocks, int dataBlocks)
    {
        const int steps = 3000;
        MemoryDevice device = await CrashTestKit.NewStoreAsync(dataBlocks, journalBlocks: 16);
        var workload = new StoreWorkload(seed, new WorkloadOptions { MaxInstances = instances, InstanceBlocks = instanceBlocks },
            device, () => device = device.Clone());
        await workload.OpenAsync();
        for (int i = 0; i < steps; i++)
        {
            await workload.StepAsync();
        }

        await workload.Store.DisposeAsync();
        var counts = string.Join(", ", workload.Counts.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}"));
        CrashTestKit.Report($"seed {seed}: {steps} steps ({counts}); {workload.CheckpointCount} checkpoints, " +
                            $"{workload.StoreFullCount} writes refused for a full store");
        Assert.Multiple(() =>
        {
            Assert.That(workload.CheckpointCount, Is.GreaterThan(20), "the small journal forces checkpoints");
            Assert.That(workload.Counts.GetValueOrDefault(StepKind.KillReopen), Is.GreaterThan(20));
            if (dataBlocks <= 200)
            {
                Assert.That(workload.StoreFullCount, Is.GreaterThan(0), "the tight store fills up");
            }
        });
    }
    /// <summary>
    /// docs/FORMAT.md: an instance id is "store-wide, never reused". A deleted instance's id must
    /// not come back after a crash either (the superblock's next id may be older than the delete).
    /// </summary>
    [Test]
    public async Task Instance_ids_are_never_reused_even_after_a_crash()
    {
        var device = await CrashTestKit.NewStoreAsync(dataBlocks: 64, journalBlocks: 16);
        var store = await UpperStore.OpenAsync(device);
        var used = new List<uint>
        {
            (await store.CreateInstanceAsync("a", 4 * CrashTestKit.Block, null)).Definition.Id,
            (await store.CreateInstanceAsync("b", 4 * CrashTestKit.Block, null)).Definition.Id,
        };
        await store.DeleteInstanceAsync("b");

        var reopened = await UpperStore.OpenAsync(device.Clone());   // kill -9, reopen
        var c = await reopened.CreateInstanceAsync("c", 4 * CrashTestKit.Block, null);
        Assert.That(used, Does.Not.Contain(c.Definition.Id), $"ids used before: {string.Join(", ", used)}");
    }
}
