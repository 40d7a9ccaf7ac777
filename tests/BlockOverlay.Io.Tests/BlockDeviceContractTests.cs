using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Io.Tests;

public enum DeviceKind
{
    Memory,
    FileOverThreads,
    FileOverUring,
    FaultInjectingOverMemory,
    PowerLossOverMemory,
    Rbd,
}

/// <summary>The contract of <see cref="IBlockDevice"/>, proved the same way on every device and decorator.</summary>
[TestFixture(DeviceKind.Memory)]
[TestFixture(DeviceKind.FileOverThreads)]
[TestFixture(DeviceKind.FileOverUring)]
[TestFixture(DeviceKind.FaultInjectingOverMemory)]
[TestFixture(DeviceKind.PowerLossOverMemory)]
[TestFixture(DeviceKind.Rbd, Category = "Ceph")]
public sealed class BlockDeviceContractTests(DeviceKind kind)
{
    private const long DeviceSize = 4 << 20;
    private const int Block = TestData.Block;

    private ScratchDirectory? _scratch;
    private (RbdAddress Image, CephClientOptions Cluster)? _rbd;
    private IBlockDevice _device = null!;

    [SetUp]
    public async Task CreateDevice()
    {
        switch (kind)
        {
            case DeviceKind.Memory:
                _device = new MemoryDevice(DeviceSize);
                break;
            case DeviceKind.FileOverThreads:
                _scratch = new ScratchDirectory();
                _device = await _scratch.CreateStoreAsync("store", DeviceSize, IoBackend.Threads);
                break;
            case DeviceKind.FileOverUring:
                _scratch = new ScratchDirectory();
                _device = await _scratch.CreateStoreAsync("store", DeviceSize, IoBackend.Uring);
                break;
            case DeviceKind.FaultInjectingOverMemory:
                _device = new FaultInjectingDevice(new MemoryDevice(DeviceSize));
                break;
            case DeviceKind.PowerLossOverMemory:
                _device = new PowerLossDevice(new MemoryDevice(DeviceSize));
                break;
            case DeviceKind.Rbd:
                var cluster = (await CephTestCluster.SharedAsync()).Options;
                _rbd = (CephTestCluster.NewImage("contract"), cluster);
                _device = await RbdDevice.CreateAsync(_rbd.Value.Image, DeviceSize, cluster);
                break;
        }
    }

    [TearDown]
    public async Task DisposeDevice()
    {
        await _device.DisposeAsync();
        _scratch?.Dispose();
        if (_rbd is var (image, cluster))
        {
            await RbdDevice.RemoveAsync(image, cluster);
        }
    }

    [Test]
    public void Size_is_the_size_asked_for() => Assert.That(_device.Size, Is.EqualTo(DeviceSize));

    [Test]
    public async Task Blocks_never_written_read_as_zeros()
    {
        var bytes = await TestData.ReadAsync(_device, DeviceSize - (8 * Block), 8 * Block);

        Assert.That(bytes, Is.All.EqualTo(0));
    }

    [Test]
    public async Task Written_blocks_read_back_exactly([Values] bool durable)
    {
        // First block, a multi-block run in the middle, and the last block.
        (long Offset, int Tag, int Length)[] writes = [(0, 1, Block), (5 * Block, 2, 3 * Block), (DeviceSize - Block, 3, Block)];
        foreach (var (offset, tag, length) in writes)
        {
            await TestData.WriteAsync(_device, offset, tag, length, durable);
        }

        foreach (var (offset, tag, length) in writes)
        {
            Assert.That(await TestData.ReadAsync(_device, offset, length), Is.EqualTo(TestData.Pattern(tag, length)), $"at {offset}");
        }

        Assert.That(await TestData.ReadAsync(_device, Block, 4 * Block), Is.All.EqualTo(0), "neighbours untouched");
    }

    [Test]
    public async Task A_gather_write_lands_as_its_segments_one_after_another([Values] bool durable)
    {
        // Segments of 1, 3 and 1 blocks from separate buffers, each from its own pattern, and
        // 8 one-block segments taken from one buffer back to front (adjacent in memory, but
        // in the opposite order on the device).
        using var a = TestData.PatternBuffer(21, Block);
        using var b = TestData.PatternBuffer(22, 3 * Block);
        using var c = TestData.PatternBuffer(23, Block);
        using var d = TestData.PatternBuffer(24, 8 * Block);
        ReadOnlyMemory<byte>[] segments =
        [
            a.Memory, b.Memory, c.Memory,
            .. Enumerable.Range(0, 8).Select(i => (ReadOnlyMemory<byte>)d.Memory.Slice((7 - i) * Block, Block)),
        ];
        long offset = 6 * Block;

        await _device.WriteGatherAsync(offset, segments, durable);

        byte[] expected = [.. segments.SelectMany(s => s.ToArray())];
        Assert.That(await TestData.ReadAsync(_device, offset, expected.Length), Is.EqualTo(expected));
        Assert.That(await TestData.ReadAsync(_device, offset - Block, Block), Is.All.EqualTo(0), "the block before untouched");
        Assert.That(await TestData.ReadAsync(_device, offset + expected.Length, Block), Is.All.EqualTo(0), "the block after untouched");
    }

    private static readonly object[] BadGathers =
    [
        new TestCaseData(0L, new[] { 0, -1 }).SetArgDisplayNames("an empty segment"),
        new TestCaseData(0L, new[] { 0, 512 }).SetArgDisplayNames("a segment's address not aligned"),
        new TestCaseData(0L, new[] { 0, -2 }).SetArgDisplayNames("a segment's length not a multiple of 4096"),
        new TestCaseData(0L, Array.Empty<int>()).SetArgDisplayNames("no segment"),
        new TestCaseData(512L, new[] { 0 }).SetArgDisplayNames("offset not a multiple of 4096"),
        new TestCaseData(DeviceSize - Block, new[] { 0, Block }).SetArgDisplayNames("runs past the end"),
    ];

    /// <param name="starts">Where each segment starts in one buffer; -1 makes an empty segment, -2 one of 1,024 bytes.</param>
    [TestCaseSource(nameof(BadGathers))]
    public async Task Bad_gather_writes_throw_ArgumentException_and_write_nothing(long offset, int[] starts)
    {
        using var buffer = TestData.PatternBuffer(9, 3 * Block);
        var segments = starts.Select(start => start switch
        {
            -1 => ReadOnlyMemory<byte>.Empty,
            -2 => buffer.Memory[..1024],
            _ => buffer.Memory.Slice(start, Block),
        }).ToArray();

        Assert.CatchAsync<ArgumentException>(async () => await _device.WriteGatherAsync(offset, segments, durable: true));
        Assert.That(await TestData.ReadAsync(_device, 0, 2 * Block), Is.All.EqualTo(0));
        Assert.That(await TestData.ReadAsync(_device, DeviceSize - Block, Block), Is.All.EqualTo(0));
    }

    [Test]
    public async Task A_read_sees_the_latest_of_overlapping_writes()
    {
        await TestData.WriteAsync(_device, 0, tag: 1, 4 * Block, durable: false);
        await TestData.WriteAsync(_device, Block, tag: 2, Block, durable: true);

        var bytes = await TestData.ReadAsync(_device, 0, 4 * Block);

        Assert.Multiple(() =>
        {
            Assert.That(bytes[..Block], Is.EqualTo(TestData.Pattern(1, 4 * Block)[..Block]));
            Assert.That(bytes[Block..(2 * Block)], Is.EqualTo(TestData.Pattern(2, Block)));
            Assert.That(bytes[(2 * Block)..], Is.EqualTo(TestData.Pattern(1, 4 * Block)[(2 * Block)..]));
        });
    }

    [Test]
    public async Task Flush_keeps_every_completed_write()
    {
        await TestData.WriteAsync(_device, 2 * Block, tag: 4, 2 * Block, durable: false);

        await _device.FlushAsync();

        Assert.That(await TestData.ReadAsync(_device, 2 * Block, 2 * Block), Is.EqualTo(TestData.Pattern(4, 2 * Block)));
    }

    private static readonly object[] BadRequests =
    [
        new TestCaseData(512L, 0, Block).SetArgDisplayNames("offset not a multiple of 4096"),
        new TestCaseData(0L, 0, 1024).SetArgDisplayNames("length not a multiple of 4096"),
        new TestCaseData(0L, 0, 0).SetArgDisplayNames("empty"),
        new TestCaseData(0L, 512, Block).SetArgDisplayNames("buffer address not aligned"),
        new TestCaseData(-(long)Block, 0, Block).SetArgDisplayNames("negative offset"),
        new TestCaseData(DeviceSize, 0, Block).SetArgDisplayNames("starts at the end"),
        new TestCaseData(DeviceSize - Block, 0, 2 * Block).SetArgDisplayNames("runs past the end"),
        new TestCaseData(long.MaxValue - (Block - 1), 0, 2 * Block).SetArgDisplayNames("offset + length overflows"),
    ];

    [TestCaseSource(nameof(BadRequests))]
    public async Task Bad_writes_throw_ArgumentException_and_write_nothing(long offset, int bufferStart, int length)
    {
        using var buffer = TestData.PatternBuffer(9, 3 * Block);
        var data = buffer.Memory.Slice(bufferStart, length);

        Assert.CatchAsync<ArgumentException>(async () => await _device.WriteAsync(offset, data, durable: true));
        Assert.That(await TestData.ReadAsync(_device, 0, 2 * Block), Is.All.EqualTo(0));
        Assert.That(await TestData.ReadAsync(_device, DeviceSize - Block, Block), Is.All.EqualTo(0));
    }

    [TestCaseSource(nameof(BadRequests))]
    public void Bad_reads_throw_ArgumentException(long offset, int bufferStart, int length)
    {
        using var buffer = new AlignedBuffer(3 * Block);
        var target = buffer.Memory.Slice(bufferStart, length);

        Assert.CatchAsync<ArgumentException>(async () => await _device.ReadAsync(offset, target));
    }

    [Test]
    public async Task Concurrent_writes_to_distinct_ranges_all_land()
    {
        const int writers = 64;
        const int length = 2 * Block;

        // Task.Run so that even the synchronous memory devices see truly parallel callers.
        await Task.WhenAll(Enumerable.Range(0, writers).Select(i =>
            Task.Run(() => TestData.WriteAsync(_device, (long)i * length, tag: i + 10, length, durable: i % 2 == 0))));

        var misplaced = new List<int>();
        for (var i = 0; i < writers; i++)
        {
            if (!(await TestData.ReadAsync(_device, (long)i * length, length)).SequenceEqual(TestData.Pattern(i + 10, length)))
            {
                misplaced.Add(i);
            }
        }

        Assert.That(misplaced, Is.Empty);
    }
}
