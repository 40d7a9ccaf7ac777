namespace BlockOverlay.LibNbd.Tests;

/// <summary>Synchronous commands against one nbdkit memory disk. Each test owns a distinct
/// 1 MiB region, so the tests do not depend on one another's data.</summary>
[TestFixture]
public sealed class ReadWriteTests
{
    private const ulong Region = 1 << 20;
    private NbdkitServer server = null!;
    private NbdClient client = null!;

    [OneTimeSetUp]
    public void StartServer()
    {
        server = NbdkitServer.StartUnix("memory", "64M");
        client = new NbdClient();
        client.ConnectUnix(server.SocketPath);
    }

    [OneTimeTearDown]
    public void StopServer()
    {
        client?.Dispose();
        server?.Dispose();
    }

    [Test]
    public void Pwrite_then_Pread_returns_the_pattern()
    {
        var written = Pattern(64 * 1024, seed: 1);
        var read = new byte[written.Length];

        client.Pwrite(written, 1 * Region + 4096);
        client.Pread(read, 1 * Region + 4096);

        Assert.That(read, Is.EqualTo(written));
    }

    [Test]
    public void Pread_of_a_sub_range_returns_the_matching_bytes()
    {
        var written = Pattern(8192, seed: 2);
        var read = new byte[1000];

        client.Pwrite(written, 2 * Region);
        client.Pread(read.AsSpan(), 2 * Region + 100);

        Assert.That(read, Is.EqualTo(written[100..1100]));
    }

    [Test]
    public void Fua_write_is_read_back()
    {
        var written = Pattern(4096, seed: 3);
        var read = new byte[written.Length];

        client.Pwrite(written, 3 * Region, CommandFlags.Fua);
        client.Pread(read, 3 * Region);

        Assert.That(read, Is.EqualTo(written));
    }

    [Test]
    public void Flush_after_writes_keeps_the_data()
    {
        var written = Pattern(4096, seed: 4);
        var read = new byte[written.Length];

        client.Pwrite(written, 4 * Region);
        client.Flush();
        client.Pread(read, 4 * Region);

        Assert.That(read, Is.EqualTo(written));
    }

    [Test]
    public void Trim_then_Pread_returns_zeros()
    {
        client.Pwrite(Pattern(128 * 1024, seed: 5), 5 * Region);

        client.Trim(128 * 1024, 5 * Region);

        Assert.That(ReadBack(5 * Region, 128 * 1024), Is.All.Zero);
    }

    [Test]
    public void Zero_then_Pread_returns_zeros_around_untouched_data()
    {
        var written = Pattern(3 * 4096, seed: 6);
        client.Pwrite(written, 6 * Region);

        client.Zero(4096, 6 * Region + 4096, CommandFlags.NoHole);

        var read = ReadBack(6 * Region, 3 * 4096);
        Assert.Multiple(() =>
        {
            Assert.That(read[..4096], Is.EqualTo(written[..4096]));
            Assert.That(read[4096..8192], Is.All.Zero);
            Assert.That(read[8192..], Is.EqualTo(written[8192..]));
        });
    }

    [Test]
    public void Fast_zero_is_accepted_by_a_server_that_offers_it()
    {
        client.Pwrite(Pattern(4096, seed: 7), 7 * Region);

        client.Zero(4096, 7 * Region, CommandFlags.FastZero);

        Assert.That(ReadBack(7 * Region, 4096), Is.All.Zero);
    }

    [Test]
    public void Cache_succeeds_and_leaves_the_data_alone()
    {
        var written = Pattern(4096, seed: 8);
        client.Pwrite(written, 8 * Region);

        client.Cache(4096, 8 * Region);

        Assert.That(ReadBack(8 * Region, 4096), Is.EqualTo(written));
    }

    [Test]
    public void PreadStructured_fills_the_buffer_and_reports_chunks_covering_it()
    {
        var written = Pattern(16 * 1024, seed: 9);
        var read = new byte[written.Length];
        client.Pwrite(written, 9 * Region);

        var chunks = client.PreadStructured(read, 9 * Region);

        Assert.Multiple(() =>
        {
            Assert.That(read, Is.EqualTo(written));
            Assert.That(chunks, Is.Not.Empty);
            Assert.That(chunks.Sum(c => (long)c.Length), Is.EqualTo(written.Length));
            Assert.That(chunks.Min(c => c.Offset), Is.EqualTo(9 * Region));
            Assert.That(chunks.Select(c => c.Status), Has.None.EqualTo(ReadChunkStatus.Error));
        });
    }

    private static byte[] Pattern(int length, int seed) =>
        [.. Enumerable.Range(0, length).Select(i => (byte)((i * 31) + (seed * 17) + (i >> 8)))];

    private byte[] ReadBack(ulong offset, int length)
    {
        var buffer = new byte[length];
        client.Pread(buffer, offset);
        return buffer;
    }
}
