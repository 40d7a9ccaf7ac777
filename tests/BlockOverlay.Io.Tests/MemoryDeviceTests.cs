using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

public sealed class MemoryDeviceTests
{
    private const int Block = TestData.Block;

    [Test]
    public async Task A_huge_device_costs_only_the_blocks_written()
    {
        const long size = 64L << 30;
        var device = new MemoryDevice(size);

        await TestData.WriteAsync(device, size - Block, tag: 1, Block, durable: false);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(device.AllocatedBytes, Is.EqualTo(Block));
            Assert.That(await TestData.ReadAsync(device, size - Block, Block), Is.EqualTo(TestData.Pattern(1, Block)));
        });
    }

    [Test]
    public async Task Writing_zeros_releases_blocks()
    {
        var device = new MemoryDevice(1 << 20);
        await TestData.WriteAsync(device, 0, tag: 1, 4 * Block, durable: false);
        using var zeros = new AlignedBuffer(4 * Block);

        await device.WriteAsync(0, zeros.Memory, durable: false);

        Assert.That(device.AllocatedBytes, Is.Zero);
    }

    [Test]
    public async Task A_clone_is_independent_of_its_original()
    {
        var original = new MemoryDevice(1 << 20);
        await TestData.WriteAsync(original, 0, tag: 1, Block, durable: false);

        var clone = original.Clone();
        await TestData.WriteAsync(original, 0, tag: 2, Block, durable: false);
        await TestData.WriteAsync(clone, Block, tag: 3, Block, durable: false);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(clone.Size, Is.EqualTo(original.Size));
            Assert.That(await TestData.ReadAsync(clone, 0, Block), Is.EqualTo(TestData.Pattern(1, Block)));
            Assert.That(await TestData.ReadAsync(original, Block, Block), Is.All.EqualTo(0));
        });
    }

    [Test]
    public void Unaligned_access_reaches_any_byte_across_block_boundaries()
    {
        var device = new MemoryDevice(1 << 20);
        var bytes = TestData.Pattern(5, 5000);

        device.WriteUnaligned(Block - 3, bytes);
        var back = new byte[5000];
        device.ReadUnaligned(Block - 3, back);
        var before = new byte[1];
        device.ReadUnaligned(Block - 4, before);

        Assert.Multiple(() =>
        {
            Assert.That(back, Is.EqualTo(bytes));
            Assert.That(before[0], Is.Zero);
        });
    }

    [Test]
    public void Unaligned_access_outside_the_device_is_refused()
    {
        var device = new MemoryDevice(Block);

        Assert.Multiple(() =>
        {
            Assert.Catch<ArgumentException>(() => device.WriteUnaligned(Block - 1, new byte[2]));
            Assert.Catch<ArgumentException>(() => device.ReadUnaligned(-1, new byte[1]));
        });
    }

    [TestCase(0L)]
    [TestCase(-4096L)]
    [TestCase(4097L)]
    public void Sizes_that_are_not_whole_blocks_are_refused(long size) =>
        Assert.Catch<ArgumentException>(() => _ = new MemoryDevice(size));

    [Test]
    public async Task Content_outlives_dispose_like_a_file_outlives_its_descriptor()
    {
        var device = new MemoryDevice(1 << 20);
        await TestData.WriteAsync(device, 0, tag: 6, Block, durable: true);

        await device.DisposeAsync();

        Assert.That(await TestData.ReadAsync(device, 0, Block), Is.EqualTo(TestData.Pattern(6, Block)));
    }
}
