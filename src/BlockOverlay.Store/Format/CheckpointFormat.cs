using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace BlockOverlay.Store.Format;

/// <summary>A run of an instance's map in a checkpoint: upper blocks, or blocks that read as zeros.</summary>
public readonly record struct CheckpointExtent(long VirtualBlock, long Length, bool Zero, long StoreBlock);

/// <summary>One instance in a checkpoint: its definition and its whole map.</summary>
public sealed record CheckpointInstance(InstanceDefinition Definition, IReadOnlyList<CheckpointExtent> Extents);

/// <summary>
/// The checkpoint's encoding: every instance and its whole extent map, as of a journal
/// sequence, so the journal before that point is no longer needed. A checkpoint lives in
/// data-region blocks; the superblock names where, how long and its checksum.
/// </summary>
/// <remarks>
/// <code>
///  0  u8[8]  magic "BOVCKPT1"
///  8  u64    replay sequence: the first journal batch not folded into this checkpoint
/// 16  u32    instance count
/// 20  u32    reserved (0)
/// 24  u64    payload length in bytes (from byte 64)
/// 32  u8[24] reserved (0)
/// 56  u64    checksum: XXH64 of header bytes [0, 56) followed by the payload
/// 64         per instance: u16 definition length, definition (as the CreateInstance record
///            body), u64 extent count, then extents of 32 bytes: u64 virtual block,
///            u64 length in blocks, u64 store block (0 for zeros), u64 kind (1 upper, 2 zero)
/// </code>
/// </remarks>
public static class CheckpointFormat
{
    public const int HeaderBytes = 64;
    private const int ExtentBytes = 32;
    private static ReadOnlySpan<byte> Magic => "BOVCKPT1"u8;

    public static byte[] Encode(ulong replaySequence, IReadOnlyList<CheckpointInstance> instances)
    {
        var payload = new ArrayBufferWriter<byte>();
        foreach (var instance in instances)
        {
            var definition = EncodeDefinition(instance.Definition);
            Write(payload, (ushort)definition.Length, 2);
            payload.Write(definition);
            Write(payload, (ulong)instance.Extents.Count, 8);
            foreach (var e in instance.Extents)
            {
                Write(payload, (ulong)e.VirtualBlock, 8);
                Write(payload, (ulong)e.Length, 8);
                Write(payload, (ulong)(e.Zero ? 0 : e.StoreBlock), 8);
                Write(payload, e.Zero ? 2UL : 1UL, 8);
            }
        }

        var bytes = new byte[HeaderBytes + payload.WrittenCount];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(8), replaySequence);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(16), (uint)instances.Count);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(24), (ulong)payload.WrittenCount);
        payload.WrittenSpan.CopyTo(bytes.AsSpan(HeaderBytes));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(56), Checksums.Of(bytes.AsSpan(0, 56), bytes.AsSpan(HeaderBytes)));
        return bytes;
    }

    /// <summary>Decodes a checkpoint, refusing anything that does not check out, naming where it is.</summary>
    public static (ulong ReplaySequence, List<CheckpointInstance> Instances) Decode(ReadOnlySpan<byte> bytes, string where)
    {
        if (bytes.Length < HeaderBytes || !bytes[..8].SequenceEqual(Magic))
        {
            throw new StoreFormatException($"{where}: no checkpoint here (bad magic)");
        }

        long payloadBytes = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]);
        if (payloadBytes != bytes.Length - HeaderBytes ||
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[56..]) != Checksums.Of(bytes[..56], bytes[HeaderBytes..]))
        {
            throw new StoreFormatException($"{where}: checkpoint fails its checksum (corrupt)");
        }

        ulong sequence = BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]);
        int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes[16..]);
        var rest = bytes[HeaderBytes..];
        var instances = new List<CheckpointInstance>(count);
        try
        {
            for (int i = 0; i < count; i++)
            {
                int length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
                var definition = DecodeDefinition(rest.Slice(2, length), where);
                rest = rest[(2 + length)..];
                long extents = (long)BinaryPrimitives.ReadUInt64LittleEndian(rest);
                rest = rest[8..];
                if (extents < 0 || extents > rest.Length / ExtentBytes)
                {
                    throw new StoreFormatException($"{where}: instance {definition.Id} claims {extents} extents");
                }

                var list = new List<CheckpointExtent>((int)extents);
                for (long e = 0; e < extents; e++)
                {
                    long kind = BinaryPrimitives.ReadInt64LittleEndian(rest[24..]);
                    list.Add(new CheckpointExtent(BinaryPrimitives.ReadInt64LittleEndian(rest), BinaryPrimitives.ReadInt64LittleEndian(rest[8..]),
                        kind == 2, BinaryPrimitives.ReadInt64LittleEndian(rest[16..])));
                    rest = rest[ExtentBytes..];
                }

                instances.Add(new CheckpointInstance(definition, list));
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new StoreFormatException($"{where}: checkpoint ends in the middle of an instance");
        }

        return (sequence, instances);
    }

    private static byte[] EncodeDefinition(InstanceDefinition d)
    {
        var name = Encoding.UTF8.GetBytes(d.Name);
        var path = Encoding.UTF8.GetBytes(d.Base?.Path ?? string.Empty);
        var bytes = new byte[28 + 2 + name.Length + 2 + path.Length + 1 + 8];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, d.Id);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(4), d.VirtualSize);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(12), d.Base?.Size ?? 0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(20), d.Base?.Fingerprint ?? 0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(28), (ushort)name.Length);
        name.CopyTo(bytes, 30);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(30 + name.Length), (ushort)path.Length);
        path.CopyTo(bytes, 32 + name.Length);
        bytes[32 + name.Length + path.Length] = d.ModeByte;
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(33 + name.Length + path.Length), d.Quota);
        return bytes;
    }

    private static InstanceDefinition DecodeDefinition(ReadOnlySpan<byte> bytes, string where)
    {
        uint id = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        long size = BinaryPrimitives.ReadInt64LittleEndian(bytes[4..]);
        long baseSize = BinaryPrimitives.ReadInt64LittleEndian(bytes[12..]);
        ulong fingerprint = BinaryPrimitives.ReadUInt64LittleEndian(bytes[20..]);
        int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[28..]);
        string name = Encoding.UTF8.GetString(bytes.Slice(30, nameLength));
        int pathLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[(30 + nameLength)..]);
        string path = Encoding.UTF8.GetString(bytes.Slice(32 + nameLength, pathLength));
        var (mode, unclean) = InstanceDefinition.ReadModeByte(bytes[32 + nameLength + pathLength], where);
        long quota = BinaryPrimitives.ReadInt64LittleEndian(bytes[(33 + nameLength + pathLength)..]);
        return new InstanceDefinition(id, name, size, path.Length == 0 ? null : new BaseIdentity(path, baseSize, fingerprint), mode, unclean, quota);
    }

    private static void Write(ArrayBufferWriter<byte> writer, ulong value, int width)
    {
        var span = writer.GetSpan(8);
        BinaryPrimitives.WriteUInt64LittleEndian(span, value);
        writer.Advance(width);
    }
}
