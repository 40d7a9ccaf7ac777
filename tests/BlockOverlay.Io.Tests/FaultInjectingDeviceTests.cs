using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

public sealed class FaultInjectingDeviceTests
{
    private const int Block = TestData.Block;
    private const int EIO = 5;
    private const int ENOSPC = 28;

    private MemoryDevice _media = null!;
    private FaultInjectingDevice _device = null!;

    [SetUp]
    public void CreateDevice()
    {
        _media = new MemoryDevice(1 << 20);
        _device = new FaultInjectingDevice(_media);
    }

    [TearDown]
    public async Task DisposeDevice()
    {
        await _device.DisposeAsync();
        await _media.DisposeAsync();
    }

    [Test]
    public async Task A_transient_fault_fails_the_next_calls_then_heals()
    {
        _device.FailNext(DeviceOperation.Write, count: 2);

        for (var attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, 0, tag: 1, Block, durable: true));
            Assert.That(error!.HResult, Is.EqualTo(EIO));
            Assert.That(await TestData.ReadAsync(_media, 0, Block), Is.All.EqualTo(0), "a failed write leaves the media unchanged");
        }

        await TestData.WriteAsync(_device, 0, tag: 1, Block, durable: true);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(await TestData.ReadAsync(_media, 0, Block), Is.EqualTo(TestData.Pattern(1, Block)));
            Assert.That(_device.WriteCount, Is.EqualTo(3));
            Assert.That(_device.InjectedFailureCount, Is.EqualTo(2));
        });
    }

    [Test]
    public async Task A_permanent_fault_fails_every_call_until_cleared()
    {
        _device.FailAlways(DeviceOperation.Write, InjectedError.NoSpace);

        for (var attempt = 0; attempt < 10; attempt++)
        {
            var error = Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, Block, tag: 2, Block, durable: false));
            Assert.That(error!.HResult, Is.EqualTo(ENOSPC));
        }

        _device.ClearAll();
        await TestData.WriteAsync(_device, Block, tag: 2, Block, durable: false);

        Assert.That(await TestData.ReadAsync(_media, Block, Block), Is.EqualTo(TestData.Pattern(2, Block)));
    }

    [Test]
    public async Task Only_calls_overlapping_the_rule_range_fail()
    {
        _device.FailAlways(DeviceOperation.Write, offset: 2 * Block, length: Block);

        await TestData.WriteAsync(_device, Block, tag: 1, Block, durable: true);
        await TestData.WriteAsync(_device, 3 * Block, tag: 1, Block, durable: true);
        await TestData.ReadAsync(_device, 2 * Block, Block);
        await _device.FlushAsync();

        Assert.Multiple(() =>
        {
            Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, 2 * Block, tag: 1, Block, durable: true));
            Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, Block, tag: 1, 2 * Block, durable: true), "straddles the start");
            Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, 0, tag: 1, 8 * Block, durable: true), "covers the range");
            Assert.That(_device.InjectedFailureCount, Is.EqualTo(3));
        });
    }

    [Test]
    public async Task Only_the_chosen_operation_fails()
    {
        _device.FailAlways(DeviceOperation.Read);
        _device.FailNext(DeviceOperation.Flush, count: 1);

        await TestData.WriteAsync(_device, 0, tag: 1, Block, durable: false);

        await Assert.MultipleAsync(async () =>
        {
            Assert.CatchAsync<IOException>(() => TestData.ReadAsync(_device, 0, Block));
            Assert.CatchAsync<IOException>(async () => await _device.FlushAsync());
            await _device.FlushAsync();
            Assert.That((_device.ReadCount, _device.WriteCount, _device.FlushCount), Is.EqualTo((1L, 1L, 2L)));
        });
    }

    [Test]
    public async Task Clearing_one_rule_keeps_the_others()
    {
        var reads = _device.FailAlways(DeviceOperation.Read);
        _device.FailAlways(DeviceOperation.Write);

        _device.Clear(reads);

        await TestData.ReadAsync(_device, 0, Block);
        Assert.CatchAsync<IOException>(() => TestData.WriteAsync(_device, 0, tag: 1, Block, durable: true));
    }

    [Test]
    public void Failures_arrive_through_the_task_not_as_a_synchronous_throw()
    {
        _device.FailAlways(DeviceOperation.Write);
        using var buffer = new AlignedBuffer(Block);

        var write = _device.WriteAsync(0, buffer.Memory, durable: true);

        Assert.That(write.IsFaulted, Is.True);
        Assert.CatchAsync<IOException>(async () => await write);
    }

    [Test]
    public void Bad_arguments_are_argument_errors_even_when_a_fault_is_armed()
    {
        _device.FailAlways(DeviceOperation.Write);
        using var buffer = new AlignedBuffer(Block);

        Assert.CatchAsync<ArgumentException>(async () => await _device.WriteAsync(512, buffer.Memory, durable: true));
        Assert.That(_device.InjectedFailureCount, Is.Zero);
    }

    [Test]
    public async Task A_transient_fault_fails_exactly_its_count_under_concurrency()
    {
        _device.FailNext(DeviceOperation.Write, count: 10);

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 100).Select(i => Task.Run(async () =>
        {
            try
            {
                await TestData.WriteAsync(_device, (long)i * Block, tag: i, Block, durable: false);
                return true;
            }
            catch (IOException)
            {
                return false;
            }
        })));

        Assert.Multiple(() =>
        {
            Assert.That(outcomes.Count(succeeded => !succeeded), Is.EqualTo(10));
            Assert.That(_device.InjectedFailureCount, Is.EqualTo(10));
            Assert.That(_device.WriteCount, Is.EqualTo(100));
        });
    }
}
