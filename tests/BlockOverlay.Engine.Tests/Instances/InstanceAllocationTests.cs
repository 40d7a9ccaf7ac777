using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// The steady state of a writer and a reader allocates nothing (GC work is CPU every tenant
/// pays). Over a memory device every step completes synchronously, so the thread's own
/// allocation counter sees all of it and the count is exact.
/// </summary>
public sealed class InstanceAllocationTests
{
    private const int Block = UpperStore.BlockSize;
    private MemoryDevice _device = null!;
    private UpperStore _store = null!;
    private WriteBackCache _cache = null!;
    private InstanceExport _export = null!;

    [SetUp]
    public async Task Start()
    {
        _device = new MemoryDevice(32L << 20);
        await UpperStore.CreateAsync(_device);
        _store = await UpperStore.OpenAsync(_device);
        _cache = new WriteBackCache(_store, CacheOptions.FlushOnly);
        _export = new InstanceExport(_cache, await _store.CreateInstanceAsync("vm", 64 * Block, null), null);
    }

    [TearDown]
    public async Task Stop()
    {
        await _export.DisposeAsync();
        await _cache.DisposeAsync();
        await _store.DisposeAsync();
        await _device.DisposeAsync();
    }

    [Test]
    public void A_4_KiB_write_over_a_dirty_block_allocates_nothing()
    {
        byte[] data = new byte[Block];
        Complete(_export.WriteAsync(Block, data, WriteFlags.None));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            Complete(_export.WriteAsync(Block, data, WriteFlags.None));
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [Test]
    public async Task A_4_KiB_read_of_upper_data_and_of_a_dirty_block_allocates_nothing()
    {
        byte[] data = new byte[Block];
        await _export.WriteAsync(2 * Block, data, WriteFlags.None);
        await _export.FlushAsync();
        await _export.WriteAsync(3 * Block, data, WriteFlags.None);
        Complete(_export.ReadAsync(2 * Block, data));
        Complete(_export.ReadAsync(3 * Block, data));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            Complete(_export.ReadAsync(2 * Block, data));
            Complete(_export.ReadAsync(3 * Block, data));
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    /// <summary>
    /// Takes the result of an operation that must have completed on this thread (else the count
    /// would miss work). Asserted only when it fails: NUnit's constraints allocate.
    /// </summary>
    private static void Complete(ValueTask operation)
    {
        if (!operation.IsCompleted)
        {
            Assert.Fail("expected to complete synchronously over a memory device");
        }

        operation.GetAwaiter().GetResult();
    }
}
