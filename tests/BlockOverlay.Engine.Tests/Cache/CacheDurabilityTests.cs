using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// What the cache promises about durability, each checked by cutting the power (a
/// <see cref="PowerLossDevice"/> crash image) right after the promise was made.
/// </summary>
[TestFixture]
public sealed class CacheDurabilityTests
{
    [Test]
    public async Task A_fua_write_is_durable_when_acknowledged_and_so_is_everything_acknowledged_before_it()
    {
        await using var rig = await Rig.CreateAsync(CacheOptions.FlushOnly, FlushMode.Isolated, "x", "y");
        var (x, y) = (rig.Exports[0], rig.Exports[1]);
        await x.WriteAsync(0, Filled(Block, 1), WriteFlags.None);
        await y.WriteAsync(0, Filled(Block, 2), WriteFlags.None);
        await x.WriteAsync(5 * Block, Filled(100, 3), WriteFlags.Fua);

        var (readX, readY) = await rig.ReadAfterPowerCutAsync(8 * Block);

        Assert.Multiple(() =>
        {
            Assert.That(readX.AsSpan(0, Block).IndexOfAnyExcept((byte)1), Is.EqualTo(-1), "x's earlier write");
            Assert.That(readX.AsSpan(5 * Block, 100).IndexOfAnyExcept((byte)3), Is.EqualTo(-1), "x's FUA write");
            Assert.That(readY.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "y's unflushed write is not made durable by x's FUA");
        });
    }

    [Test]
    public async Task A_detached_client_leaves_nothing_dirty_and_what_it_wrote_survives_a_power_cut()
    {
        await using var rig = await Rig.CreateAsync(CacheOptions.FlushOnly, FlushMode.Isolated, "x", "y");
        var (x, y) = (rig.Exports[0], rig.Exports[1]);
        await x.WriteAsync(Block, Filled(3 * Block, 7), WriteFlags.None);
        await y.WriteAsync(0, Filled(Block, 8), WriteFlags.None);

        await x.ClientDetachedAsync();

        Assert.That(x.DirtyBytes, Is.Zero, "x after its client left");
        Assert.That(y.DirtyBytes, Is.EqualTo(Block), "y keeps its dirty data: its client is still there");
        var (readX, _) = await rig.ReadAfterPowerCutAsync(8 * Block);
        Assert.That(readX.AsSpan(Block, 3 * Block).IndexOfAnyExcept((byte)7), Is.EqualTo(-1), "x's data after the cut");
    }

    [Test]
    public async Task A_flush_covers_writes_acknowledged_through_every_export_user_of_the_instance()
    {
        // Two "connections" are two callers of one export: the cache is per instance, not per caller.
        await using var rig = await Rig.CreateAsync(CacheOptions.FlushOnly, FlushMode.Isolated, "x", "y");
        var x = rig.Exports[0];
        await Task.WhenAll(
            Task.Run(async () => await x.WriteAsync(0, Filled(2 * Block, 4), WriteFlags.None)),
            Task.Run(async () => await x.WriteAsync(4 * Block, Filled(Block, 5), WriteFlags.None)));
        await Task.Run(async () => await x.FlushAsync());

        var (readX, _) = await rig.ReadAfterPowerCutAsync(8 * Block);
        Assert.That(readX.AsSpan(0, 2 * Block).IndexOfAnyExcept((byte)4), Is.EqualTo(-1));
        Assert.That(readX.AsSpan(4 * Block, Block).IndexOfAnyExcept((byte)5), Is.EqualTo(-1));
    }

    [Test]
    public async Task A_volatile_instance_acknowledges_flushes_without_writing_and_is_unclean_after_a_crash()
    {
        await using var rig = await Rig.CreateAsync(CacheOptions.FlushOnly, FlushMode.Volatile, "scratch");
        var scratch = rig.Exports[0];
        await scratch.WriteAsync(0, Filled(Block, 9), WriteFlags.Fua);
        await scratch.FlushAsync();

        Assert.That(rig.Store.Counters.DataBytes, Is.Zero, "a volatile flush writes no data");
        Assert.That(scratch.Counters.Flushes, Is.EqualTo(2), "both were counted as flushes");
        var image = rig.PowerCut();
        var crashed = await UpperStore.OpenAsync(image);
        var definition = crashed.Find("scratch")!.Definition;
        Assert.That(definition.Unclean, Is.True, "a volatile instance in use at a crash is reported unclean");

        // The mark outlives a clean close (it is in the checkpoint) ...
        await crashed.DisposeAsync();
        var reopened = await UpperStore.OpenAsync(image);
        Assert.That(reopened.Find("scratch")!.Definition.Unclean, Is.True, "still unclean after a clean close and reopen");

        // ... until an operator sets a mode, durably.
        await reopened.SetFlushModeAsync("scratch", FlushMode.Isolated);
        await using var cleared = await UpperStore.OpenAsync(image.Clone());
        Assert.That(cleared.Find("scratch")!.Definition, Is.EqualTo(definition with { FlushMode = FlushMode.Isolated, Unclean = false }));
        await reopened.DisposeAsync();
    }

    [Test]
    public async Task A_volatile_instance_closed_cleanly_keeps_its_data_and_is_not_unclean()
    {
        var memory = new MemoryDevice(64L * MiB);
        var store = await NewStoreAsync(memory);
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var scratch = (await OpenAsync(cache, 8 * Block, FlushMode.Volatile, "scratch"))[0];
        await scratch.WriteAsync(Block, Filled(Block, 6), WriteFlags.None);
        await scratch.DisposeAsync();
        await cache.DisposeAsync();
        await store.DisposeAsync();

        await using var reopened = await UpperStore.OpenAsync(memory);
        await using var again = new WriteBackCache(reopened, CacheOptions.FlushOnly);
        await using var export = new InstanceExport(again, reopened.Find("scratch")!, null);
        byte[] read = new byte[Block];
        await export.ReadAsync(Block, read);
        Assert.That(read.All(b => b == 6), Is.True, "written back and checkpointed at the clean close");
        Assert.That(reopened.Find("scratch")!.Definition.Unclean, Is.False);
    }

    /// <summary>Instances in a store on a power-loss device, and a way to cut the power.</summary>
    private sealed class Rig : IAsyncDisposable
    {
        private readonly PowerLossDevice _device;

        private Rig(PowerLossDevice device, UpperStore store, WriteBackCache cache, InstanceExport[] exports)
        {
            _device = device;
            Store = store;
            Cache = cache;
            Exports = exports;
        }

        public UpperStore Store { get; }

        public WriteBackCache Cache { get; }

        public InstanceExport[] Exports { get; }

        public static async Task<Rig> CreateAsync(CacheOptions options, FlushMode mode, params string[] names)
        {
            var memory = new MemoryDevice(64L * MiB);
            await UpperStore.CreateAsync(memory);
            var device = new PowerLossDevice(memory);
            var store = await UpperStore.OpenAsync(device);
            var cache = new WriteBackCache(store, options);
            return new Rig(device, store, cache, await OpenAsync(cache, 8 * Block, mode, names));
        }

        /// <summary>What survives if the power went now (writes not yet durable may be lost or torn).</summary>
        public MemoryDevice PowerCut() => _device.Crash(new Random(1));

        /// <summary>Cuts the power and reads the first two instances back from what survived.</summary>
        public async Task<(byte[] First, byte[] Second)> ReadAfterPowerCutAsync(int bytes)
        {
            await using var store = await UpperStore.OpenAsync(PowerCut());
            await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
            var read = new byte[2][];
            for (int i = 0; i < 2; i++)
            {
                await using var export = new InstanceExport(cache, store.Instances[i], null);
                read[i] = new byte[bytes];
                await export.ReadAsync(0, read[i]);
            }

            return (read[0], read[1]);
        }

        public async ValueTask DisposeAsync()
        {
            // The process "died" at the cut: the cache is abandoned, not written back.
            await Cache.AbandonAsync();
            foreach (var export in Exports)
            {
                await export.DisposeAsync();
            }

            await Store.DisposeAsync();
        }
    }
}
