using System.Diagnostics;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// A memory device whose reads are slow (a timer wait before and after each) while writes only
/// yield: a read's window is long enough for many allocations, frees and reuses to happen in it.
/// </summary>
internal sealed class SlowReadDevice(MemoryDevice inner) : IBlockDevice
{
    public long Size => inner.Size;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        await Task.Delay(1);
        await inner.ReadAsync(offset, buffer);
        await Task.Delay(1);
    }

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        await Task.Yield();
        await inner.WriteAsync(offset, data, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>
/// A memory device that can hold one read: once armed, the next read waits before it reads and
/// again before it returns, so a test can change the store around it step by step.
/// </summary>
internal sealed class GatedDevice(MemoryDevice inner) : IBlockDevice
{
    private Gate? _armed;

    public long Size => inner.Size;

    public Gate Arm() => _armed = new Gate();

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        var gate = Interlocked.Exchange(ref _armed, null);
        if (gate is null)
        {
            await inner.ReadAsync(offset, buffer);
            return;
        }

        gate.Offset = offset;
        gate.Started.SetResult();
        await gate.ProceedToRead.Task;
        await inner.ReadAsync(offset, buffer);
        gate.Read.SetResult();
        await gate.ProceedToReturn.Task;
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) => inner.WriteAsync(offset, data, durable);

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    internal sealed class Gate
    {
        public long Offset { get; set; }

        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ProceedToRead { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Read { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ProceedToReturn { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>
/// DESIGN.md, invariant 4 under concurrency: a read of one instance racing that instance's own writes and
/// zeroing (which free never-committed upper blocks at once) and another instance's writes
/// (which reuse them) must never return the other instance's bytes.
/// </summary>
[TestFixture]
public sealed class InstanceIsolationTests
{
    private const int Block = UpperStore.BlockSize;
    private const byte Victim = 0xAA, Neighbour = 0xBB;

    /// <summary>
    /// The store is filled but for a short free run, so freed blocks come back within a few dozen
    /// allocations: the block a read of A's block is reading may be freed, taken and written by B,
    /// freed again and taken again by A for the very same virtual block — all inside the read.
    /// </summary>
    [TestCase(1, 24)]
    [TestCase(2, 40)]
    public async Task Reads_racing_frees_and_reuse_never_return_another_instances_data(int seed, int freeBlocks)
    {
        var memory = new MemoryDevice(4 << 20);
        await UpperStore.CreateAsync(memory, new StoreCreateOptions { JournalBlocks = 16 });
        var store = await UpperStore.OpenAsync(new SlowReadDevice(memory));
        try
        {
            // Fill all but a short free run with a third instance's data, durably.
            var filler = await store.CreateInstanceAsync("filler", 4 << 20, null);
            long fill = store.FreeBlocks - freeBlocks;
            await store.WriteAsync(filler, 0, new byte[fill * Block]);
            await store.CommitAsync(filler);
            // Straight at the store: these are its read tickets and quarantine under test (the
            // write-back cache above would keep the blocks in memory).
            var a = await store.CreateInstanceAsync("victim", 64 * Block, null);
            var b = await store.CreateInstanceAsync("neighbour", 64 * Block, null);

            byte[] ofA = Filled(Victim), ofB = Filled(Neighbour);
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            long reads = 0, churn = 0;
            string? leak = null;

            async Task Churn(StoreInstance instance, byte[] data, long block, int taskSeed)
            {
                var rng = new Random(taskSeed);
                while (!stop.IsCancellationRequested && leak is null)
                {
                    // Never committed: each overwrite or zero frees the block it replaces (once no
                    // read that may have found it is in flight). With so few free blocks, those
                    // waiting frees can fill the store for a moment: then try again.
                    try
                    {
                        if (rng.Next(5) != 0)
                        {
                            await store.WriteAsync(instance, block, data);
                        }
                        else
                        {
                            store.Zero(instance, block, 1);
                            await Task.Yield();
                        }
                    }
                    catch (StoreFullException)
                    {
                        await Task.Yield();
                    }

                    Interlocked.Increment(ref churn);
                }
            }

            async Task Read()
            {
                byte[] buffer = new byte[Block];
                var layout = new List<BlockOverlay.Store.Maps.MappedExtent>();
                while (!stop.IsCancellationRequested && leak is null)
                {
                    buffer.AsSpan().Clear(); // a zeroed block is not filled by the store
                    await store.ReadAsync(a, 0, buffer, layout);
                    await Task.Yield(); // a read of a zeroed block never waits: do not hog a thread
                    Interlocked.Increment(ref reads);
                    if (!buffer.AsSpan().SequenceEqual(ofA) && buffer.AsSpan().ContainsAnyExcept((byte)0))
                    {
                        int foreign = buffer.AsSpan().Count(Neighbour);
                        leak = $"seed {seed}: a read of victim block 0 returned {foreign} bytes of 0x{Neighbour:x2} (the neighbour's data) " +
                            $"and {buffer.AsSpan().Count(Victim)} of 0x{Victim:x2}, after {Interlocked.Read(ref reads)} reads and {Interlocked.Read(ref churn)} writes/zeroes";
                    }
                }
            }

            var watch = Stopwatch.StartNew();
            await Task.WhenAll(
                Task.Run(() => Churn(a, ofA, 0, seed)),
                Task.Run(() => Churn(b, ofB, 0, seed + 1)),
                Task.Run(() => Churn(b, ofB, 1, seed + 2)),
                Task.Run(Read),
                Task.Run(Read));
            await TestContext.Out.WriteLineAsync($"seed {seed}, {freeBlocks} free blocks: {reads} reads, {churn} writes/zeroes in {watch.ElapsedMilliseconds} ms");
            Assert.That(leak, Is.Null);
            Assert.That(reads, Is.GreaterThan(50), "the race needs reads");
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    /// <summary>
    /// The same race, step by step. A read looks the victim's block 0 up (store block s) and is
    /// held before reading s. The victim overwrites block 0, which frees s at once (it was never
    /// committed). If s could now be given to the neighbour and written, the held read would
    /// return the neighbour's data; comparing block numbers after the read cannot catch it,
    /// because s can also come back to the victim's block 0 (ABA). The store must hold s back
    /// while the read is in flight.
    /// </summary>
    [Test]
    public async Task A_block_freed_under_a_read_in_flight_is_not_reused_until_the_read_ends()
    {
        var memory = new MemoryDevice(8 << 20);
        await UpperStore.CreateAsync(memory, new StoreCreateOptions { JournalBlocks = 16 });
        var device = new GatedDevice(memory);
        var store = await UpperStore.OpenAsync(device);
        try
        {
            var victim = await store.CreateInstanceAsync("victim", 64 * Block, null);
            var neighbour = await store.CreateInstanceAsync("neighbour", 64 * Block, null);
            int version = 0;

            // 1. The victim's block 0 is in store block s (never committed).
            await store.WriteAsync(victim, 0, VictimData(++version));
            long s = StoreBlockOf(store, victim);

            // 2. A read of it looks block 0 up (s) and is held before reading s.
            var gate = device.Arm();
            var read = Task.Run(async () =>
            {
                byte[] buffer = new byte[Block];
                await store.ReadAsync(victim, 0, buffer, []);
                return buffer;
            });
            await gate.Started.Task;
            Assert.That(gate.Offset, Is.EqualTo(s * Block), "the held read is of s");

            // 3. The victim overwrites block 0 (s is freed); the neighbour writes until the store
            //    is full, and is never given s.
            await store.WriteAsync(victim, 0, VictimData(++version));
            Assert.That(StoreBlockOf(store, victim), Is.Not.EqualTo(s));
            Assert.That(await WriteUntilGivenAsync(store, neighbour, s, () => Filled(Neighbour)), Is.False,
                "the neighbour was given a block that a read in flight had found in the victim's map");

            // 4. The read completes with the victim's own data (the version it looked up).
            gate.ProceedToRead.SetResult();
            gate.ProceedToReturn.SetResult();
            byte[] got = await read;
            Assert.That(got, Is.EqualTo(VictimData(1)));

            // 5. With the read done, s is free for anyone again.
            store.Zero(neighbour, 0, 1);
            Assert.That(await WriteUntilGivenAsync(store, neighbour, s, () => Filled(Neighbour)), Is.True, "s is released after the read");
        }
        finally
        {
            await store.DisposeAsync();
        }
    }

    /// <summary>Overwrites block 0 (freeing the block it replaces) until given <paramref name="wanted"/>, or the store is full.</summary>
    private static async Task<bool> WriteUntilGivenAsync(UpperStore store, StoreInstance instance, long wanted, Func<byte[]> data)
    {
        for (int i = 0; i < 10000; i++)
        {
            try
            {
                await store.WriteAsync(instance, 0, data());
            }
            catch (StoreFullException)
            {
                return false;
            }

            if (StoreBlockOf(store, instance) == wanted)
            {
                return true;
            }
        }

        return false;
    }

    private static long StoreBlockOf(UpperStore store, StoreInstance instance)
    {
        var layout = new List<BlockOverlay.Store.Maps.MappedExtent>();
        store.Lookup(instance, 0, 1, layout);
        return layout[0].Kind == BlockOverlay.Store.Maps.ExtentKind.Upper ? layout[0].StoreBlock : -1;
    }

    private static byte[] VictimData(int version)
    {
        byte[] bytes = Filled(Victim);
        BitConverter.TryWriteBytes(bytes, version);
        return bytes;
    }

    private static byte[] Filled(byte value)
    {
        byte[] bytes = new byte[Block];
        Array.Fill(bytes, value);
        return bytes;
    }
}
