using System.Buffers;
using System.Buffers.Binary;

namespace BlockOverlay.Store.Format;

/// <summary>A run of an instance's map in a checkpoint: upper blocks, or blocks that read as zeros.</summary>
public readonly record struct CheckpointExtent(long VirtualBlock, long Length, bool Zero, long StoreBlock);

/// <summary>One instance in a checkpoint: its definition and its whole map.</summary>
public sealed record CheckpointInstance(InstanceDefinition Definition, IReadOnlyList<CheckpointExtent> Extents);

/// <summary>
/// The whole checkpoint of stores written before incremental checkpoints (superblock
/// incompatible bit 2 clear): every instance and its whole extent map, as of a journal
/// sequence and a data commit number, in data-region blocks the superblock names. This build
/// reads it (a store keeps opening) and never writes it: its first checkpoint replaces it with
/// an incremental one (<see cref="CheckpointParts"/>).
/// </summary>
/// <remarks>
/// The bytes: <see cref="CheckpointLayout"/>, then per instance a u16 definition length, the
/// definition (<see cref="DefinitionFormat"/>), a u64 extent count and the extents
/// (<see cref="ExtentLayout"/>); drawn in docs/FORMAT.md ("Whole checkpoint").
/// </remarks>
public static class CheckpointFormat
{
    public static int HeaderBytes => CheckpointLayout.Checksum.End;
    private static int ExtentBytes => ExtentLayout.Kind.End;
    private const ulong ZeroKind = 2;
    private const int DefinitionLengthBytes = 2, ExtentCountBytes = 8;
    private static ReadOnlySpan<byte> Magic => "BOVCKPT1"u8;

    /// <summary>Decodes a checkpoint, refusing anything that does not check out, naming where it is.</summary>
    public static (ulong ReplaySequence, ulong CommitsThrough, List<CheckpointInstance> Instances) Decode(ReadOnlySpan<byte> bytes, string where)
    {
        if (bytes.Length < HeaderBytes || !CheckpointLayout.Magic.Of(bytes).SequenceEqual(Magic))
        {
            throw new StoreFormatException($"{where}: no checkpoint here (bad magic)");
        }

        long payloadBytes = (long)CheckpointLayout.PayloadBytes.Read(bytes);
        if (payloadBytes != bytes.Length - HeaderBytes || CheckpointLayout.Checksum.Read(bytes) != ChecksumOf(bytes))
        {
            throw new StoreFormatException($"{where}: checkpoint fails its checksum (corrupt)");
        }

        ulong sequence = CheckpointLayout.ReplaySequence.Read(bytes);
        uint count = CheckpointLayout.InstanceCount.Read(bytes);
        var rest = bytes[HeaderBytes..];
        // Checked before it sizes anything: each instance takes at least its two counts.
        if (count > rest.Length / (DefinitionLengthBytes + ExtentCountBytes))
        {
            throw new StoreFormatException($"{where}: checkpoint claims {count} instances in {rest.Length} bytes");
        }

        var instances = new List<CheckpointInstance>((int)count);
        try
        {
            for (uint i = 0; i < count; i++)
            {
                int length = BinaryPrimitives.ReadUInt16LittleEndian(rest);
                var definition = DefinitionFormat.Decode(rest.Slice(DefinitionLengthBytes, length), where);
                rest = rest[(DefinitionLengthBytes + length)..];
                long extents = (long)BinaryPrimitives.ReadUInt64LittleEndian(rest);
                rest = rest[ExtentCountBytes..];
                if (extents < 0 || extents > rest.Length / ExtentBytes)
                {
                    throw new StoreFormatException($"{where}: instance {definition.Id} claims {extents} extents");
                }

                var list = new List<CheckpointExtent>((int)extents);
                for (long e = 0; e < extents; e++)
                {
                    list.Add(new CheckpointExtent(ExtentLayout.VirtualBlock.ReadSigned(rest), ExtentLayout.Length.ReadSigned(rest),
                        ExtentLayout.Kind.Read(rest) == ZeroKind, ExtentLayout.StoreBlock.ReadSigned(rest)));
                    rest = rest[ExtentBytes..];
                }

                instances.Add(new CheckpointInstance(definition, list));
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new StoreFormatException($"{where}: checkpoint ends in the middle of an instance");
        }

        return (sequence, CheckpointLayout.CommitsThrough.Read(bytes), instances);
    }

    /// <summary>XXH64 of the header bytes before its checksum field, followed by the payload.</summary>
    private static ulong ChecksumOf(ReadOnlySpan<byte> bytes) =>
        Checksums.Of(bytes[..CheckpointLayout.Checksum.Offset], bytes[HeaderBytes..]);
}

/// <summary>A checkpoint's header, in bytes; the payload (instances) follows it.</summary>
internal static class CheckpointLayout
{
    public static readonly BytesField Magic = new(0, 8);

    /// <summary>The first journal batch not folded into this checkpoint.</summary>
    public static readonly U64Field ReplaySequence = new(Magic.End);
    public static readonly U32Field InstanceCount = new(ReplaySequence.End);
    public static readonly U32Field Reserved = new(InstanceCount.End);
    public static readonly U64Field PayloadBytes = new(Reserved.End);

    /// <summary>The last data commit the checkpoint holds (<see cref="JournalCommit.Number"/>); 0 for none.</summary>
    public static readonly U64Field CommitsThrough = new(PayloadBytes.End);
    public static readonly BytesField Reserved2 = new(CommitsThrough.End, 16);

    /// <summary>XXH64 of the header bytes before this field, followed by the payload.</summary>
    public static readonly U64Field Checksum = new(Reserved2.End);
}

/// <summary>One extent of an instance's map in a checkpoint; blocks are 4096-byte blocks.</summary>
internal static class ExtentLayout
{
    public static readonly U64Field VirtualBlock = new(0);

    /// <summary>Length in blocks.</summary>
    public static readonly U64Field Length = new(VirtualBlock.End);

    /// <summary>Where the upper blocks are; 0 for a run of zeros.</summary>
    public static readonly U64Field StoreBlock = new(Length.End);

    /// <summary>1: upper blocks, 2: zeros.</summary>
    public static readonly U64Field Kind = new(StoreBlock.End);
}
