using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

/// <summary>
/// What only the io_uring backend has: the choice of <see cref="IoBackend.Auto"/> and its
/// fallback, and disposal that waits for the ring's requests. The rest of its behaviour is
/// proved by the contract and <see cref="FileDeviceTests"/>, which run over both backends.
/// </summary>
public sealed class UringFileIoTests
{
    private const int Block = TestData.Block;

    [Test]
    public void Auto_falls_back_to_threads_naming_why_when_the_kernel_refuses_a_ring()
    {
        // A real refusal: io_uring_setup answers EINVAL to more entries than it allows (32768).
        var (chosen, fallback) = IoBackends.Choose(() => IoBackends.Probe(entries: 1 << 20));

        Assert.Multiple(() =>
        {
            Assert.That(chosen, Is.EqualTo(IoBackend.Threads));
            Assert.That(fallback, Does.Contain("io_uring_setup").And.Contain("errno 22").And.Contain("threads backend"));
        });
    }

    [Test]
    public void Auto_chooses_io_uring_where_the_kernel_allows_it()
    {
        if (File.Exists("/proc/sys/kernel/io_uring_disabled") && File.ReadAllText("/proc/sys/kernel/io_uring_disabled").Trim() != "0")
        {
            Assert.Ignore("kernel.io_uring_disabled is set on this machine");
        }

        Assert.That(IoBackends.Resolve(IoBackend.Auto), Is.EqualTo((IoBackend.Uring, (string?)null)));
    }

    [Test]
    public async Task Disposing_with_writes_in_flight_lets_them_finish_then_releases_the_store()
    {
        using var scratch = new ScratchDirectory();
        var device = await scratch.CreateStoreAsync("store", 64 * Block, IoBackend.Uring);
        var buffers = Enumerable.Range(0, 64).Select(i => TestData.PatternBuffer(i, Block)).ToArray();
        try
        {
            var writes = buffers.Select((buffer, i) => device.WriteAsync((long)i * Block, buffer.Memory, durable: i % 2 == 0).AsTask()).ToArray();

            await device.DisposeAsync();
            await Task.WhenAll(writes);
            await using var reopened = FileDevice.Open(scratch.File("store"), backend: IoBackend.Uring);

            Assert.That(await TestData.ReadAsync(reopened, 63 * Block, Block), Is.EqualTo(TestData.Pattern(63, Block)));
            Assert.CatchAsync<ObjectDisposedException>(async () => await device.ReadAsync(0, buffers[0].Memory));
        }
        finally
        {
            foreach (var buffer in buffers)
            {
                ((IDisposable)buffer).Dispose();
            }
        }
    }
}
