using BlockOverlay.Engine.Exports;
using BlockOverlay.LibNbd;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>Many connections, each pipelining many requests, on one export.</summary>
public class ConcurrencyTests
{
    [Test]
    public async Task Multi_conn_a_write_on_one_connection_flushed_on_another_is_read_on_a_third()
    {
        string directory = Directory.CreateTempSubdirectory("blockoverlay-mc-").FullName;
        try
        {
            string image = Path.Combine(directory, "disk.img");
            await File.WriteAllBytesAsync(image, new byte[1 << 20]);
            await using var server = new TestServer(("disk", FileExport.Open(image)));
            using var writer = Connect(server, "disk");
            using var flusher = Connect(server, "disk");
            using var reader = Connect(server, "disk");
            Assert.That(writer.CanMultiConn(), Is.True);

            var data = Pattern(12345, 8);
            writer.Pwrite(data, 1000);
            flusher.Flush();
            Assert.That(reader.Read(data.Length, 1000), Is.EqualTo(data));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task Eight_connections_pipelining_32_requests_each_keep_every_byte()
    {
        const int connections = 8, requestsEach = 256, depth = 32, block = 4096;
        await using var server = new TestServer(("disk", new MemoryExport(connections * requestsEach * block)));
        var work = Enumerable.Range(0, connections).Select(c => Task.Run(() =>
        {
            using var client = Connect(server, "disk");
            ulong region = (ulong)c * requestsEach * block;
            var buffers = Enumerable.Range(0, depth).Select(_ => new NativeBuffer(block)).ToList();
            try
            {
                var inFlight = new Queue<long>();
                for (int i = 0; i < requestsEach; i++)
                {
                    if (inFlight.Count == depth)
                    {
                        client.WaitForCompletion(inFlight.Dequeue());
                    }

                    var buffer = buffers[i % depth];
                    Pattern(block, (c * requestsEach) + i).CopyTo(buffer.Span);
                    inFlight.Enqueue(client.AioPwrite(buffer, region + ((ulong)i * block)));
                }

                while (inFlight.Count > 0)
                {
                    client.WaitForCompletion(inFlight.Dequeue());
                }

                for (int i = 0; i < requestsEach; i++)
                {
                    Assert.That(client.Read(block, region + ((ulong)i * block)), Is.EqualTo(Pattern(block, (c * requestsEach) + i)),
                        $"connection {c} block {i}");
                }
            }
            finally
            {
                buffers.ForEach(b => b.Dispose());
            }
        }));
        await Task.WhenAll(work);
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task Connections_racing_on_the_same_blocks_leave_each_sector_whole()
    {
        const int connections = 4, rounds = 50, length = 64 * 1024;
        await using var server = new TestServer(("disk", new MemoryExport(length)));
        var work = Enumerable.Range(0, connections).Select(c => Task.Run(() =>
        {
            using var client = Connect(server, "disk");
            var data = Enumerable.Repeat((byte)(c + 1), length).ToArray();
            for (int r = 0; r < rounds; r++)
            {
                client.Pwrite(data, 0);
            }
        }));
        await Task.WhenAll(work);

        using var reader = Connect(server, "disk");
        var content = reader.Read(length, 0);
        for (int sector = 0; sector < length; sector += 512)
        {
            var bytes = content.AsSpan(sector, 512);
            Assert.That(bytes.ContainsAnyExcept(bytes[0]), Is.False, $"sector at {sector} mixes writes");
            Assert.That(bytes[0], Is.InRange(1, connections));
        }
    }
}
