using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// The store model test (<see cref="StoreModelTests"/>) on an RBD image of the one-node test
/// cluster, where a kill-reopen is what a host failure looks like on Ceph: the old server is
/// not closed, a new one opens the image with takeover (breaking the old one's lock, which
/// blocklists it), recovers, and must find every block as the model allows. The fenced old
/// device must refuse to write from then on, and never change what the new owner reads.
/// </summary>
[Category("Ceph")]
public sealed class StoreOverRbdTests
{
    private const int Block = CrashTestKit.Block;

    [TestCase(7, 3, 48, 300, 600)]
    public async Task Random_steps_match_the_model_through_takeovers(int seed, int instances, int instanceBlocks, int dataBlocks, int steps)
    {
        const int journalBlocks = 16;
        var cluster = (await CephTestCluster.SharedAsync()).Options;
        var image = CephTestCluster.NewImage("store-model");
        var fenced = new List<RbdDevice>();
        var device = await RbdDevice.CreateAsync(image, (2 + journalBlocks + dataBlocks) * Block, cluster);
        try
        {
            await UpperStore.CreateAsync(device, new StoreCreateOptions { JournalBlocks = journalBlocks });
            var workload = new StoreWorkload(seed, new WorkloadOptions { MaxInstances = instances, InstanceBlocks = instanceBlocks },
                device, () =>
                {
                    // Another host takes the image over; the old owner is left running, as a paused one would be.
                    fenced.Add(device);
                    device = RbdDevice.OpenAsync(image, cluster, takeover: true).GetAwaiter().GetResult();
                    return device;
                });
            await workload.OpenAsync();
            for (int i = 0; i < steps; i++)
            {
                await workload.StepAsync();
            }

            await workload.Store.DisposeAsync();
            CrashTestKit.Report($"RBD seed {seed}: {steps} steps, {fenced.Count} takeovers, {workload.CheckpointCount} checkpoints");
            Assert.Multiple(() =>
            {
                Assert.That(fenced, Has.Count.GreaterThan(2), "takeovers happened");
                Assert.That(workload.CheckpointCount, Is.GreaterThan(2), "the small journal forces checkpoints");
            });
            using var buffer = new AlignedBuffer(Block);
            var refused = Assert.CatchAsync<IOException>(async () => await fenced[0].WriteAsync(0, buffer.Memory, durable: true));
            Assert.That(refused!.HResult, Is.EqualTo(RbdDevice.EBLOCKLISTED), "the first owner is fenced");
        }
        finally
        {
            foreach (var old in fenced)
            {
                await old.DisposeAsync();
            }

            await device.DisposeAsync();
            await RbdDevice.RemoveAsync(image, cluster);
        }
    }
}
