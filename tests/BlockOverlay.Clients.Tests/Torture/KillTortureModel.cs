using System.Buffers.Binary;

namespace BlockOverlay.Clients.Tests.Torture;

/// <summary>
/// What the torture's nbdsh writers write, and what each instance may read after a kill -9.
/// A writer of instance INST in cycle TAG writes, per round R, W whole blocks picked by
/// <see cref="RoundBlocks"/> (distinct within a round), each opening with a header naming
/// (INST, TAG, R, block), then flushes and prints <c>round R</c>. If the last round printed is
/// R, rounds up to R are durable and round R + 1 may be partly there; round R + 2 never began
/// (it starts only after R + 1 is printed). So per block: its content after rounds up to R, or
/// the block of round R + 1. A block with another instance's header is a cross-instance leak.
/// </summary>
internal static class KillTortureModel
{
    public const int Block = 4096;
    private const int HeaderLength = 20;
    private static readonly byte[] Magic = "TORT"u8.ToArray();

    /// <summary>The Python that writes as described above; SOCKET and connect() come from <see cref="Fixtures.StoreNbdsh"/>.</summary>
    public static string Script(string export, int instance, int tag, int perRound, long blocks) => $$"""
        import struct
        PAT = bytes(range(256)) * 17
        h = connect("{{export}}")
        for r in range(1000000):
            for j in range({{perRound}}):
                b = (r * 7919 + j * 104729 + {{instance * 13 + tag}}) % {{blocks}}
                k = ({{tag}} * 31 + r * 7 + b) % 256
                h.pwrite(struct.pack("<4sIIII", b"TORT", {{instance}}, {{tag}}, r, b) + PAT[k:k + {{Block - HeaderLength}}], b * {{Block}})
            h.flush()
            print(f"round {r}", flush=True)
        """;

    /// <summary>The blocks round <paramref name="round"/> writes (as the script picks them).</summary>
    public static IEnumerable<long> RoundBlocks(int instance, int tag, int round, int perRound, long blocks) =>
        Enumerable.Range(0, perRound).Select(j => ((long)round * 7919 + (long)j * 104729 + instance * 13 + tag) % blocks);

    /// <summary>The bytes the script writes to <paramref name="block"/> in round <paramref name="round"/>.</summary>
    public static byte[] Content(int instance, int tag, int round, long block)
    {
        var bytes = new byte[Block];
        Magic.CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)instance);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)tag);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(12), (uint)round);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), (uint)block);
        int k = (int)((tag * 31L + round * 7L + block) % 256);
        for (int i = HeaderLength; i < Block; i++)
        {
            bytes[i] = (byte)(k + i - HeaderLength);
        }

        return bytes;
    }

    /// <summary>The instance a block's header names, or null if it has none.</summary>
    public static int? Writer(ReadOnlySpan<byte> block) =>
        block[..4].SequenceEqual(Magic) ? (int)BinaryPrimitives.ReadUInt32LittleEndian(block[4..]) : null;

    /// <summary>The header in words, for failure messages.</summary>
    public static string Describe(ReadOnlySpan<byte> block) =>
        Writer(block) is { } writer
            ? $"instance {writer}, cycle {BinaryPrimitives.ReadUInt32LittleEndian(block[8..])}, round {BinaryPrimitives.ReadUInt32LittleEndian(block[12..])}, block {BinaryPrimitives.ReadUInt32LittleEndian(block[16..])}"
            : block.ContainsAnyExcept((byte)0) ? $"no header (first bytes {Convert.ToHexString(block[..8])})" : "all zeros";

}
