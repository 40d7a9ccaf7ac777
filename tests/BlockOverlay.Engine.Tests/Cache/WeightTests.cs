using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// The weight where the cache decides between instances: two writers held past their dirty
/// limits both wait for the one background writer, which serves them in proportion to their weights.
/// </summary>
[TestFixture]
public sealed class WeightTests
{
    [Test]
    public async Task Throttled_instances_get_background_write_back_in_proportion_to_their_weights()
    {
        var memory = new MemoryDevice(128L * MiB);
        await UpperStore.CreateAsync(memory);
        // Write-back is the bottleneck (each 64 KiB batch takes 5 ms or more), so both writers stay throttled.
        await using var store = await UpperStore.OpenAsync(new SlowWriteDevice(memory, TimeSpan.FromMilliseconds(5)));
        var options = new CacheOptions
        {
            InstanceDirtyLimit = MiB,
            GlobalDirtyLimit = 64L * MiB,
            BackgroundRatio = 1,
            MaxDirtyAge = Timeout.InfiniteTimeSpan,
            BackgroundBatchBlocks = 16,
        };
        await using var cache = new WriteBackCache(store, options);
        var exports = await OpenAsync(cache, 64L * MiB, FlushMode.Isolated, "heavy", "light");
        await store.SetQosAsync("heavy", new InstanceQos(0, 0, 300));
        var (heavy, light) = (exports[0], exports[1]);

        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        async Task WriteUntilStoppedAsync(InstanceExport export, byte owner)
        {
            byte[] chunk = Filled(256 * 1024, owner);
            for (long offset = 0; !stop.IsCancellationRequested; offset = (offset + chunk.Length) % export.Size)
            {
                await export.WriteAsync(offset, chunk, WriteFlags.None);
            }
        }

        await Task.WhenAll(Task.Run(() => WriteUntilStoppedAsync(heavy, 0x48)), Task.Run(() => WriteUntilStoppedAsync(light, 0x4C)));
        long heavyBytes = heavy.Counters.WriteBackBytes, lightBytes = light.Counters.WriteBackBytes;
        Assert.That(lightBytes, Is.GreaterThan(0), "the lighter one is not starved");
        Assert.That((double)heavyBytes / lightBytes, Is.InRange(2.0, 4.5),
            $"weights 300 and 100: {heavyBytes} and {lightBytes} bytes written back (biggest-first would give about 1:1)");
        await heavy.DisposeAsync();
        await light.DisposeAsync();
    }
}
