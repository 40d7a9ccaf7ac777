using System.Diagnostics;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>
/// A well-behaved client on its own export beside the fuzz cases: writes a block, reads it
/// back, again and again, timing each round trip. Its errors (a wrong byte, an error reply,
/// a hang, a dropped connection) and its p99 latency say whether the fuzzing of others
/// starves or breaks it.
/// </summary>
internal sealed class SteadyClient(string socketPath, TimeSpan bound)
{
    public const string Export = "steady";
    public const int Size = 1 << 20;
    private const int Block = 4096;

    private readonly List<double> _latencies = [];
    private readonly Random _random = new(12345);

    public long Errors { get; private set; }

    public long Operations => _latencies.Count;

    public double P99Milliseconds => _latencies.Count == 0 ? 0 : _latencies.Order().ElementAt((int)(_latencies.Count * 0.99));

    public async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                using var wire = await FuzzWire.ConnectAsync(socketPath, bound);
                await AttachAsync(wire);
                while (!stop.IsCancellationRequested)
                {
                    await RoundTripAsync(wire);
                    await Task.Delay(1, CancellationToken.None); // paced: a client, not a load generator
                }

                await wire.SendAsync(Request(0, 2, 0, 0, 0));
                await wire.ExpectCloseAsync("DISC");
            }
            catch (Exception e) when (e is WrongReplyException or HangException)
            {
                Errors++;
            }
        }
    }

    private static async Task AttachAsync(FuzzWire wire)
    {
        await wire.ReadAsync(18, "the greeting");
        await wire.SendAsync(U32(3));
        await wire.SendAsync(Option(7, GoData(Export)));
        while (true)
        {
            var header = await wire.ReadAsync(20, "a GO reply");
            uint type = FuzzWire.U32(header, 12), length = FuzzWire.U32(header, 16);
            if (length > 0)
            {
                await wire.ReadAsync((int)length, "GO reply data");
            }

            if (type == 1)
            {
                return;
            }

            if ((type & 0x80000000) != 0)
            {
                throw new WrongReplyException($"the steady client's GO was refused: 0x{type:x}");
            }
        }
    }

    private async Task RoundTripAsync(FuzzWire wire)
    {
        var data = new byte[Block];
        _random.NextBytes(data);
        ulong offset = (ulong)_random.Next(0, Size / Block) * Block;
        var clock = Stopwatch.StartNew();
        await wire.SendAsync(Concat(Request(0, 1, 1, offset, Block), data));
        var (writeError, _) = await FuzzReplies.ReadSimpleAsync(wire, 1, 0);
        await wire.SendAsync(Request(0, 0, 2, offset, Block));
        var (readError, read) = await FuzzReplies.ReadSimpleAsync(wire, 2, Block);
        _latencies.Add(clock.Elapsed.TotalMilliseconds);
        if (writeError != 0 || readError != 0 || !read!.AsSpan().SequenceEqual(data))
        {
            throw new WrongReplyException($"the steady client's write/read back at {offset} failed ({writeError}, {readError})");
        }
    }
}
