using BlockOverlay.Engine.Cache;
using BlockOverlay.Io;
using BlockOverlay.Store;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>
/// A device that counts the data writes on their way at once, per instance (told apart by the
/// first byte of the data, which these tests fill with the owner's byte), each taking a while.
/// </summary>
internal sealed class InFlightMeterDevice(IBlockDevice inner, long dataStart, TimeSpan perWrite) : IBlockDevice
{
    private readonly Lock _gate = new();
    private readonly Dictionary<byte, int> _now = [];
    private readonly Dictionary<byte, int> _most = [];

    public long Size => inner.Size;

    /// <summary>The most data writes of <paramref name="owner"/> that were on their way at once.</summary>
    public int MostAtOnce(byte owner)
    {
        lock (_gate)
        {
            return _most.GetValueOrDefault(owner);
        }
    }

    /// <summary>The most data writes of anybody that were on their way at once.</summary>
    public int MostOfAllAtOnce { get; private set; }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        if (offset < dataStart)
        {
            await inner.WriteAsync(offset, data, durable);
            return;
        }

        byte owner = data.Span[0];
        lock (_gate)
        {
            int now = _now[owner] = _now.GetValueOrDefault(owner) + 1;
            _most[owner] = Math.Max(_most.GetValueOrDefault(owner), now);
            MostOfAllAtOnce = Math.Max(MostOfAllAtOnce, _now.Values.Sum());
        }

        try
        {
            await Task.Delay(perWrite);
            await inner.WriteAsync(offset, data, durable);
        }
        finally
        {
            lock (_gate)
            {
                _now[owner]--;
            }
        }
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>
/// At most <see cref="CacheOptions.WriteBacksInFlight"/> batches of an instance's write-back on
/// their way to the device at once: a neighbour's flush finds at most that much of this
/// instance ahead of it in the device's queue, however many FLUSH requests the instance sends
/// at once; one large flush still keeps that many on their way. Instances do not wait for each
/// other's turns.
/// </summary>
[TestFixture]
public sealed class WriteBacksInFlightTests
{
    private const int BatchBlocks = 16;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PerWrite = TimeSpan.FromMilliseconds(5);

    private static readonly CacheOptions Options = CacheOptions.FlushOnly with { FlushBatchBlocks = BatchBlocks };

    [TestCase(1)]
    [TestCase(2)]
    public async Task Eight_flushes_at_once_put_no_more_batches_of_the_instance_on_the_device_than_its_turns(int turns)
    {
        // fio at queue depth 8 sends an fsync as eight FLUSH requests at once. Each used to
        // write its own batches of the same dirty data, so eight large writes of one tenant
        // stood in the device queue in front of a neighbour's small flush.
        var (store, device) = await OpenMeteredAsync(PerWrite);
        await using var _ = store;
        await using var cache = new WriteBackCache(store, Options with { WriteBacksInFlight = turns });
        var instance = await store.CreateInstanceAsync("noisy", 4 * MiB, null);
        var blocks = cache.Attach(instance);
        Assert.That(blocks.TryWrite(0, Filled(256 * Block, 7)), Is.True);

        long point = blocks.FlushPoint();
        var flushes = Enumerable.Range(0, 8).Select(_ => Task.Run(() => blocks.WriteBackAsync(point, WriteReason.Flush, BatchBlocks))).ToArray();
        long[] written = await Task.WhenAll(flushes).WaitAsync(Patience);

        Assert.That(blocks.DirtyBytes, Is.Zero, "every flush ended with all of its data written");
        Assert.That(written.Sum(), Is.EqualTo(256L * Block), "each block written back once");
        Assert.That(device.MostAtOnce(7), Is.EqualTo(turns), "as many batches of the instance on the device as it has turns");
    }

    [Test]
    public async Task One_large_flush_keeps_both_turns_busy()
    {
        // A flush takes its next batch while the last one is written, so a large flush alone
        // does not wait for the device between batches (the default, two turns).
        var (store, device) = await OpenMeteredAsync(PerWrite);
        await using var _ = store;
        await using var cache = new WriteBackCache(store, Options);
        Assert.That(Options.WriteBacksInFlight, Is.EqualTo(2));
        var blocks = cache.Attach(await store.CreateInstanceAsync("big", 4 * MiB, null));
        Assert.That(blocks.TryWrite(0, Filled(128 * Block, 5)), Is.True);

        long written = await blocks.WriteBackAsync(blocks.FlushPoint(), WriteReason.Flush, BatchBlocks).WaitAsync(Patience);

        Assert.That(written, Is.EqualTo(128L * Block));
        Assert.That(blocks.DirtyBytes, Is.Zero);
        Assert.That(device.MostAtOnce(5), Is.EqualTo(2), "two batches of one flush on their way together");
    }

    [Test]
    public async Task A_flush_and_a_background_batch_of_one_instance_take_turns()
    {
        var (store, device) = await OpenMeteredAsync(PerWrite);
        await using var _ = store;
        await using var cache = new WriteBackCache(store, Options with { WriteBacksInFlight = 1 });
        var blocks = cache.Attach(await store.CreateInstanceAsync("one", 4 * MiB, null));
        Assert.That(blocks.TryWrite(0, Filled(128 * Block, 3)), Is.True);

        var flush = Task.Run(() => blocks.WriteBackAsync(blocks.FlushPoint(), WriteReason.Flush, BatchBlocks));
        var background = Task.Run(async () =>
        {
            while (await blocks.WriteBackSomeAsync(BatchBlocks) > 0)
            {
            }
        });
        await Task.WhenAll(flush, background).WaitAsync(Patience);

        Assert.That(blocks.DirtyBytes, Is.Zero);
        Assert.That(device.MostAtOnce(3), Is.EqualTo(1));
    }

    [Test]
    public async Task Instances_do_not_wait_for_each_others_write_backs()
    {
        // The bound is per instance: a store-wide one would make a neighbour's flush queue
        // behind this instance's batches in our own process instead of the device's.
        var (store, device) = await OpenMeteredAsync(PerWrite * 4);
        await using var _ = store;
        await using var cache = new WriteBackCache(store, Options with { WriteBacksInFlight = 1 });
        var a = cache.Attach(await store.CreateInstanceAsync("a", 4 * MiB, null));
        var b = cache.Attach(await store.CreateInstanceAsync("b", 4 * MiB, null));
        Assert.That(a.TryWrite(0, Filled(64 * Block, 1)), Is.True);
        Assert.That(b.TryWrite(0, Filled(64 * Block, 2)), Is.True);

        await Task.WhenAll(
            Task.Run(() => a.WriteBackAsync(a.FlushPoint(), WriteReason.Flush, BatchBlocks)),
            Task.Run(() => b.WriteBackAsync(b.FlushPoint(), WriteReason.Flush, BatchBlocks))).WaitAsync(Patience);

        Assert.That(a.DirtyBytes + b.DirtyBytes, Is.Zero);
        Assert.That(device.MostOfAllAtOnce, Is.EqualTo(2), "one batch of each instance on the device together");
    }

    /// <summary>A new store opened over a meter of its data writes.</summary>
    private static async Task<(UpperStore Store, InFlightMeterDevice Device)> OpenMeteredAsync(TimeSpan perWrite)
    {
        var memory = new MemoryDevice(64L * MiB);
        long dataStart;
        await using (var plain = await NewStoreAsync(memory))
        {
            dataStart = DataStart(plain);
        }

        var device = new InFlightMeterDevice(memory, dataStart, perWrite);
        return (await UpperStore.OpenAsync(device), device);
    }
}
