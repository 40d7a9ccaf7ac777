using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Durability;

/// <summary>
/// <c>kill -9</c> of a server with two instances: what a FLUSH or a FUA write was
/// acknowledged for survives exactly; what was never flushed comes back, per 4 KiB
/// block, as either the old or the new bytes and nothing else; instances never see each
/// other's bytes; the base image is never written. Over each way the server reads and
/// writes its store file (<c>--io-backend</c>): the guarantees must not depend on it.
/// </summary>
[TestFixture("uring")]
[TestFixture("threads")]
public class KillDurabilityTests(string ioBackend)
{
    private const int BaseSize = 4 << 20;
    private const int PayloadSize = 1 << 20;
    private const int Block = StoreWorkspace.Block;

    // (offset, length, offset in the payload), unaligned on purpose.
    private static readonly long[][] FlushedOnOne =
        [[1000, 5000, 0], [65535, 3, 7], [131071, 200003, 10001], [(3 << 20) + 4095, 10000, 300000], [BaseSize - 777, 777, 400000]];

    private static readonly long[][] FuaOnTwo =
        [[777, 9000, 500000], [131071 + 50, 1000, 600000], [(2 << 20) + 1, 70000, 700000]];

    // Acknowledged but never flushed; no two of these touch the same block.
    private static readonly long[][] UnflushedOnOne =
        [[5100, 10, 800000], [1_500_017, 30000, 810000], [(3 << 20) + 4095 + 2000, 50, 850000]];

    // Rewritten round after round until the kill: 3000 bytes inside each of these blocks.
    private const long StreamStart = 2 << 20;
    private const int StreamBlocks = 192;
    private const int StreamLength = 3000;
    private const int StreamSkew = 100;

    [Test]
    public void Flushed_and_fua_writes_survive_kill_9_and_unflushed_blocks_are_old_or_new()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var baseImage = ws.WriteRandomFile("base.raw", BaseSize, seed: 11);
        var baseHash = StoreWorkspace.Sha256(ws["base.raw"]);
        var payload = ws.WriteRandomFile("payload.bin", PayloadSize, seed: 12);
        ws.CreateInstance("one", ws["base.raw"]);
        ws.CreateInstance("two", ws["base.raw"]);

        int lastRound;
        using (var server = StoreServer.Start(ws, tcp: false, "--io-backend", ioBackend))
        using (var writer = StoreNbdsh.Start(server, $$"""
            A = {{JsonSerializer.Serialize(FlushedOnOne)}}
            B = {{JsonSerializer.Serialize(FuaOnTwo)}}
            C = {{JsonSerializer.Serialize(UnflushedOnOne)}}
            one, two = connect("one"), connect("two")
            for off, length, at in A:
                one.pwrite(PAYLOAD[at:at + length], off)
            one.flush()
            for off, length, at in B:
                two.pwrite(PAYLOAD[at:at + length], off, nbd.CMD_FLAG_FUA)
            for off, length, at in C:
                one.pwrite(PAYLOAD[at:at + length], off)
            print("acked", flush=True)
            for r in range(100000):
                for i in range({{StreamBlocks}}):
                    at = ((r * {{StreamBlocks}} + i) * 3001) % (len(PAYLOAD) - {{StreamLength}})
                    one.pwrite(PAYLOAD[at:at + {{StreamLength}}], {{StreamStart}} + i * {{Block}} + {{StreamSkew}})
                print(f"round {r}", flush=True)
            """, ws["payload.bin"]))
        {
            writer.WaitForLine("acked", TimeSpan.FromSeconds(20));
            writer.WaitForLine("round 2", TimeSpan.FromSeconds(20)); // writes are streaming now
            server.Kill();
            lastRound = writer.LastRound();
        }

        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");

        var flushed = Apply(baseImage, payload, FlushedOnOne);
        var unflushed = Apply(flushed, payload, UnflushedOnOne);
        var expectedTwo = Apply(baseImage, payload, FuaOnTwo);

        byte[] one, two;
        string restartLog;
        using (var server = StoreServer.Start(ws, tcp: false, "--io-backend", ioBackend))
        {
            one = ExportContent.CopyOut(server, ws, "one");
            two = ExportContent.CopyOut(server, ws, "two");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
            restartLog = server.Log;
        }

        Assert.That(restartLog, Does.Contain("after a crash"), "the restarted server should have recovered an unclean store");
        Assert.That(two, Has.Length.EqualTo(BaseSize));
        Assert.That(one, Has.Length.EqualTo(BaseSize));

        // Instance two: exactly base + its FUA writes; in particular none of one's bytes.
        var twoDifference = ExportContent.FirstDifference(two, expectedTwo);
        Assert.That(twoDifference, Is.Null, () => $"instance two after the crash: {twoDifference}; " +
            $"{BlocksShowing(two, expectedTwo, flushed)} of its differing blocks hold instance one's bytes");

        // Instance one: every block is the flushed content, or (where unflushed writes went) the new content.
        var stream = StreamCandidates(unflushed, payload, lastRound);
        var (newUnflushed, newStreamed) = (0, 0);
        var bad = new List<string>();
        for (var block = 0; block < BaseSize / Block; block++)
        {
            var got = one.AsSpan(block * Block, Block);
            var old = flushed.AsSpan(block * Block, Block);
            if (got.SequenceEqual(old))
            {
                continue;
            }

            if (got.SequenceEqual(unflushed.AsSpan(block * Block, Block)))
            {
                newUnflushed++;
                continue;
            }

            if (stream.TryGetValue(block, out var candidates) && MatchesAny(got, candidates))
            {
                newStreamed++;
                continue;
            }

            bad.Add($"block {block} (byte {block * Block}): first byte differing from the flushed content at +{got.CommonPrefixLength(old)}");
        }

        TestContext.Out.WriteLine($"after kill -9: {newUnflushed} unflushed blocks and {newStreamed} streamed blocks came back new; last round {lastRound}");
        Assert.That(bad, Is.Empty, "blocks of instance one that are neither the flushed nor the unflushed content");

        // What recovery showed is what stays: a clean stop and another start change nothing.
        using (var server = StoreServer.Start(ws, tcp: false, "--io-backend", ioBackend))
        {
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "one"), one), Is.Null, "instance one after a clean restart");
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "two"), two), Is.Null, "instance two after a clean restart");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
            Assert.That(() => server.Log, Does.Contain("closed cleanly").After(5000, 20), server.ToString);
        }

        Assert.That(ws.StoreInfo(), Does.Match(@"last shutdown:\s+clean\b"));
        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
    }

    private static byte[] Apply(byte[] image, byte[] payload, long[][] writes)
    {
        var result = (byte[])image.Clone();
        foreach (var w in writes)
        {
            payload.AsSpan((int)w[2], (int)w[1]).CopyTo(result.AsSpan((int)w[0]));
        }

        return result;
    }

    /// <summary>Per streamed block, every content it may hold after any round up to one past the last printed.</summary>
    private static Dictionary<int, List<byte[]>> StreamCandidates(byte[] before, byte[] payload, int lastRound)
    {
        var result = new Dictionary<int, List<byte[]>>();
        for (var i = 0; i < StreamBlocks; i++)
        {
            var block = (int)(StreamStart / Block) + i;
            var candidates = new List<byte[]>();
            for (var round = 0; round <= lastRound + 1; round++)
            {
                var content = before.AsSpan(block * Block, Block).ToArray();
                var at = (int)((((long)round * StreamBlocks) + i) * 3001 % (payload.Length - StreamLength));
                payload.AsSpan(at, StreamLength).CopyTo(content.AsSpan(StreamSkew));
                candidates.Add(content);
            }

            result[block] = candidates;
        }

        return result;
    }

    private static bool MatchesAny(ReadOnlySpan<byte> block, List<byte[]> candidates)
    {
        foreach (var candidate in candidates)
        {
            if (block.SequenceEqual(candidate))
            {
                return true;
            }
        }

        return false;
    }

    private static int BlocksShowing(byte[] actual, byte[] expected, byte[] other)
    {
        var count = 0;
        for (var block = 0; block * Block < Math.Min(actual.Length, expected.Length); block++)
        {
            var got = actual.AsSpan(block * Block, Block);
            if (!got.SequenceEqual(expected.AsSpan(block * Block, Block)) && got.SequenceEqual(other.AsSpan(block * Block, Block)))
            {
                count++;
            }
        }

        return count;
    }
}
