namespace BlockOverlay.LibNbd.Tests;

/// <summary>Asynchronous commands with many in flight. Each test owns a distinct region.</summary>
[TestFixture]
public sealed class AioTests
{
    private const int QueueDepth = 32;
    private const int BlockSize = 4096;
    private const ulong Region = 4 << 20;
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
    public void Thirty_two_queued_writes_are_read_back_by_thirty_two_queued_reads()
    {
        var writes = Buffers(fill: (block, i) => (byte)((block * 13) + i));
        var reads = Buffers(fill: (_, _) => 0);
        try
        {
            var writeCookies = writes.Select((b, block) => client.AioPwrite(b, Offset(1, block))).ToList();
            foreach (var cookie in writeCookies)
            {
                client.WaitForCompletion(cookie);
            }

            var readCookies = reads.Select((b, block) => client.AioPread(b, Offset(1, block))).ToList();
            foreach (var cookie in readCookies)
            {
                client.WaitForCompletion(cookie);
            }

            Assert.Multiple(() =>
            {
                Assert.That(writeCookies.Concat(readCookies), Is.Unique);
                for (var block = 0; block < QueueDepth; block++)
                {
                    Assert.That(reads[block].Span.ToArray(), Is.EqualTo(writes[block].Span.ToArray()), $"block {block}");
                }
            });
        }
        finally
        {
            Dispose(writes);
            Dispose(reads);
        }
    }

    [Test]
    public void WaitForAnyCompletion_retires_every_queued_command_exactly_once()
    {
        var writes = Buffers(fill: (block, _) => (byte)block);
        try
        {
            var cookies = writes.Select((b, block) => client.AioPwrite(b, Offset(2, block), CommandFlags.Fua)).ToHashSet();
            var inFlightAfterQueueing = client.AioInFlight();

            var retired = Enumerable.Range(0, QueueDepth).Select(_ => client.WaitForAnyCompletion()).ToList();

            Assert.Multiple(() =>
            {
                Assert.That(inFlightAfterQueueing, Is.InRange(1, QueueDepth));
                Assert.That(retired, Is.EquivalentTo(cookies));
                Assert.That(client.AioInFlight(), Is.Zero);
                Assert.That(() => client.AioPeekCommandCompleted(), Throws.TypeOf<NbdException>(), "nothing left in flight");
            });
        }
        finally
        {
            Dispose(writes);
        }
    }

    [Test]
    public void Queued_flush_trim_and_zero_complete_and_leave_zeros()
    {
        using var data = new NativeBuffer(2 * BlockSize);
        using var check = new NativeBuffer(2 * BlockSize);
        data.Span.Fill(0xC3);
        client.WaitForCompletion(client.AioPwrite(data, Offset(3, 0)));

        var trim = client.AioTrim(BlockSize, Offset(3, 0));
        var zero = client.AioZero(BlockSize, Offset(3, 0) + BlockSize);
        var flush = client.AioFlush();
        client.WaitForCompletion(trim);
        client.WaitForCompletion(zero);
        client.WaitForCompletion(flush);
        client.WaitForCompletion(client.AioPread(check, Offset(3, 0)));

        Assert.That(check.Span.ToArray(), Is.All.Zero);
    }

    [Test]
    public void Failed_aio_command_throws_with_the_server_errno_when_retired()
    {
        using var otherClient = new NbdClient();
        otherClient.SetStrictMode(StrictMode.None);
        otherClient.ConnectUnix(server.SocketPath);
        using var buffer = new NativeBuffer(BlockSize);

        var cookie = otherClient.AioPread(buffer, 64UL << 20);
        var error = Assert.Throws<NbdException>(() => otherClient.WaitForCompletion(cookie));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.EINVAL));
            Assert.That(otherClient.AioInFlight(), Is.Zero);
        });
    }

    [Test]
    public void AioDisconnect_after_the_queue_drains_closes_the_connection_and_refuses_new_commands()
    {
        using var otherClient = new NbdClient();
        otherClient.ConnectUnix(server.SocketPath);
        using var buffer = new NativeBuffer(BlockSize);
        using var check = new NativeBuffer(BlockSize);
        buffer.Span.Fill(0x77);
        otherClient.WaitForCompletion(otherClient.AioPwrite(buffer, Offset(4, 0)));

        otherClient.AioDisconnect();
        for (var i = 0; i < 10 && !otherClient.IsClosed; i++)
        {
            otherClient.Poll(1000);
        }

        client.WaitForCompletion(client.AioPread(check, Offset(4, 0)));
        Assert.Multiple(() =>
        {
            Assert.That(otherClient.IsClosed, Is.True);
            Assert.That(() => otherClient.AioPwrite(buffer, Offset(4, 0)), Throws.TypeOf<NbdException>());
            Assert.That(check.Span.ToArray(), Is.All.EqualTo(0x77));
        });
    }

    private static ulong Offset(int test, int block) => (ulong)test * Region + (ulong)(block * BlockSize);

    private static List<NativeBuffer> Buffers(Func<int, int, byte> fill)
    {
        var buffers = new List<NativeBuffer>();
        for (var block = 0; block < QueueDepth; block++)
        {
            var buffer = new NativeBuffer(BlockSize);
            var span = buffer.Span;
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = fill(block, i);
            }

            buffers.Add(buffer);
        }

        return buffers;
    }

    private static void Dispose(List<NativeBuffer> buffers)
    {
        foreach (var buffer in buffers)
        {
            buffer.Dispose();
        }
    }
}
