using System.Buffers;
using System.Buffers.Binary;

namespace BlockOverlay.Store.Format;

/// <summary>
/// Where one part of a checkpoint lies: a group of instance entries or a page of the space
/// record. <see cref="Index"/> is the group's number (instance id / <see cref="CheckpointParts.GroupSize"/>)
/// or the page's (store block / <see cref="CheckpointParts.BlocksPerSpacePage"/>).
/// </summary>
public readonly record struct PartRef(long Index, long StoreBlock, int Bytes, int Count, ulong Checksum)
{
    public long Blocks => Superblock.BlocksFor(Bytes);
}

/// <summary>Where an instance's map segment lies (<see cref="StoreBlock"/> 0: an empty map, no segment), and what it holds.</summary>
public readonly record struct SegmentRef(long StoreBlock, long Bytes, ulong Checksum, long ExtentCount, long UpperBlocks)
{
    public static SegmentRef None => default;

    public long Blocks => Superblock.BlocksFor(Bytes);
}

/// <summary>One instance in a group: its definition and where its map is.</summary>
public sealed record GroupEntry(InstanceDefinition Definition, SegmentRef Segment);

/// <summary>A checkpoint root: the point it stands at and where its groups and space pages are.</summary>
public sealed record CheckpointRoot(ulong ReplaySequence, ulong CommitsThrough, int InstanceCount,
    IReadOnlyList<PartRef> Groups, IReadOnlyList<PartRef> SpacePages);

/// <summary>
/// The encodings of an incremental checkpoint (incompatible feature bit 2): a root the
/// superblock names, which lists groups of instance entries and pages of the space record;
/// each entry names its instance's map segment. A part that did not change since the last
/// checkpoint is kept where it is, so a checkpoint writes what changed plus its root.
/// </summary>
/// <remarks>
/// The bytes: <see cref="RootLayout"/> then <see cref="PartLayout"/> entries; a group is, per
/// instance, a u16 definition length, the definition (<see cref="DefinitionFormat"/>) and
/// <see cref="EntryLayout"/>; a segment is extents (<see cref="ExtentLayout"/>); a space page is
/// a bitmap. Drawn in docs/FORMAT.md ("Checkpoint"). Each part's checksum is kept by whatever
/// names it (the root by the superblock, groups and pages by the root, segments by their entry).
/// </remarks>
public static class CheckpointParts
{
    /// <summary>Instances per group: ids 64k to 64k+63 share group k.</summary>
    public const int GroupSize = 64;

    /// <summary>Bytes of a space page: a bitmap of <see cref="BlocksPerSpacePage"/> store blocks.</summary>
    public const int SpacePageBytes = Superblock.Size;

    public const long BlocksPerSpacePage = SpacePageBytes * 8L;

    public static int RootHeaderBytes => RootLayout.Checksum.End;
    public static int PartBytes => PartLayout.Checksum.End;
    public static int ExtentBytes => ExtentLayout.Kind.End;
    private static int EntryBytes => EntryLayout.UpperBlocks.End;
    private const ulong UpperKind = 1, ZeroKind = 2;
    private const int DefinitionLengthBytes = 2;
    private static ReadOnlySpan<byte> RootMagic => "BOVROOT1"u8;

    public static byte[] EncodeRoot(CheckpointRoot root)
    {
        int count = root.Groups.Count + root.SpacePages.Count;
        var bytes = new byte[RootHeaderBytes + (count * PartBytes)];
        RootMagic.CopyTo(RootLayout.Magic.Of(bytes.AsSpan()));
        RootLayout.ReplaySequence.Write(bytes, root.ReplaySequence);
        RootLayout.InstanceCount.Write(bytes, (uint)root.InstanceCount);
        RootLayout.GroupCount.Write(bytes, (uint)root.Groups.Count);
        RootLayout.SpacePageCount.Write(bytes, (uint)root.SpacePages.Count);
        RootLayout.CommitsThrough.Write(bytes, root.CommitsThrough);
        RootLayout.PayloadBytes.Write(bytes, (ulong)(count * PartBytes));
        var rest = bytes.AsSpan(RootHeaderBytes);
        foreach (var part in root.Groups.Concat(root.SpacePages))
        {
            PartLayout.Index.Write(rest, part.Index);
            PartLayout.StoreBlock.Write(rest, part.StoreBlock);
            PartLayout.Bytes.Write(rest, (uint)part.Bytes);
            PartLayout.Count.Write(rest, (uint)part.Count);
            PartLayout.Checksum.Write(rest, part.Checksum);
            rest = rest[PartBytes..];
        }

        RootLayout.Checksum.Write(bytes, RootChecksum(bytes));
        return bytes;
    }

    public static CheckpointRoot DecodeRoot(ReadOnlySpan<byte> bytes, string where)
    {
        if (bytes.Length < RootHeaderBytes || !RootLayout.Magic.Of(bytes).SequenceEqual(RootMagic))
        {
            throw new StoreFormatException($"{where}: no checkpoint root here (bad magic)");
        }

        long groups = RootLayout.GroupCount.Read(bytes), pages = RootLayout.SpacePageCount.Read(bytes);
        if ((long)RootLayout.PayloadBytes.Read(bytes) != bytes.Length - RootHeaderBytes ||
            (groups + pages) * PartBytes != bytes.Length - RootHeaderBytes || RootLayout.Checksum.Read(bytes) != RootChecksum(bytes))
        {
            throw new StoreFormatException($"{where}: checkpoint root fails its checksum or its length (corrupt)");
        }

        var parts = new List<PartRef>((int)(groups + pages));
        for (var rest = bytes[RootHeaderBytes..]; !rest.IsEmpty; rest = rest[PartBytes..])
        {
            uint length = PartLayout.Bytes.Read(rest), count = PartLayout.Count.Read(rest);
            long block = PartLayout.StoreBlock.ReadSigned(rest);
            bool group = parts.Count < groups;
            // What the checkpointer writes, checked before anything is sized or read by these numbers.
            if (block <= 0 || (group ? length == 0 || length > int.MaxValue || count is 0 or > GroupSize : length != SpacePageBytes))
            {
                throw new StoreFormatException($"{where}: names a {(group ? "group" : "space page")} of {length} bytes " +
                    $"({count}) at block {block}, which no checkpoint writes");
            }

            parts.Add(new PartRef(PartLayout.Index.ReadSigned(rest), block, (int)length, (int)count, PartLayout.Checksum.Read(rest)));
        }

        long instances = RootLayout.InstanceCount.Read(bytes);
        long held = parts.Take((int)groups).Sum(g => (long)g.Count);
        return instances == held
            ? new CheckpointRoot(RootLayout.ReplaySequence.Read(bytes), RootLayout.CommitsThrough.Read(bytes), (int)instances,
                parts[..(int)groups], parts[(int)groups..])
            : throw new StoreFormatException($"{where}: names {instances} instances, its groups hold {held}");
    }

    /// <summary>A group's bytes: its entries in the order given (by id).</summary>
    public static byte[] EncodeGroup(IEnumerable<GroupEntry> entries)
    {
        var payload = new ArrayBufferWriter<byte>();
        foreach (var entry in entries)
        {
            int definitionBytes = DefinitionFormat.EncodedSize(entry.Definition);
            int length = DefinitionLengthBytes + definitionBytes + EntryBytes;
            var span = payload.GetSpan(length)[..length];
            span.Clear();
            BinaryPrimitives.WriteUInt16LittleEndian(span, (ushort)definitionBytes);
            DefinitionFormat.Encode(span.Slice(DefinitionLengthBytes, definitionBytes), entry.Definition);
            var tail = span[(DefinitionLengthBytes + definitionBytes)..];
            EntryLayout.SegmentBlock.Write(tail, entry.Segment.StoreBlock);
            EntryLayout.SegmentBytes.Write(tail, entry.Segment.Bytes);
            EntryLayout.SegmentChecksum.Write(tail, entry.Segment.Checksum);
            EntryLayout.ExtentCount.Write(tail, entry.Segment.ExtentCount);
            EntryLayout.UpperBlocks.Write(tail, entry.Segment.UpperBlocks);
            payload.Advance(length);
        }

        return payload.WrittenSpan.ToArray();
    }

    /// <summary>A group's entries; <paramref name="count"/> is what the root says it holds.</summary>
    public static List<GroupEntry> DecodeGroup(ReadOnlySpan<byte> bytes, int count, string where)
    {
        if (count is <= 0 or > GroupSize)
        {
            throw new StoreFormatException($"{where}: said to hold {count} instances (a group holds 1 to {GroupSize})");
        }

        var entries = new List<GroupEntry>(count);
        try
        {
            for (int i = 0; i < count; i++)
            {
                int length = BinaryPrimitives.ReadUInt16LittleEndian(bytes);
                var definition = DefinitionFormat.Decode(bytes.Slice(DefinitionLengthBytes, length), where);
                var tail = bytes.Slice(DefinitionLengthBytes + length, EntryBytes);
                var segment = new SegmentRef(EntryLayout.SegmentBlock.ReadSigned(tail), EntryLayout.SegmentBytes.ReadSigned(tail),
                    EntryLayout.SegmentChecksum.Read(tail), EntryLayout.ExtentCount.ReadSigned(tail), EntryLayout.UpperBlocks.ReadSigned(tail));
                // Divided, not multiplied: 2^59 extents times 32 bytes wraps to 0, "no segment".
                if (segment.Bytes is < 0 or > int.MaxValue || segment.Bytes % ExtentBytes != 0 || segment.Bytes / ExtentBytes != segment.ExtentCount ||
                    segment.StoreBlock < 0 || (segment.StoreBlock == 0) != (segment.Bytes == 0) || segment.UpperBlocks < 0)
                {
                    throw new StoreFormatException($"{where}: instance {definition.Id} names a map segment of {segment.Bytes} bytes for {segment.ExtentCount} extents");
                }

                entries.Add(new GroupEntry(definition, segment));
                bytes = bytes[(DefinitionLengthBytes + length + EntryBytes)..];
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new StoreFormatException($"{where}: group ends in the middle of an instance");
        }

        return bytes.IsEmpty ? entries : throw new StoreFormatException($"{where}: {bytes.Length} bytes after the last instance of the group");
    }

    /// <summary>A map segment's bytes: the extents in order.</summary>
    public static byte[] EncodeSegment(IReadOnlyList<CheckpointExtent> extents)
    {
        var bytes = new byte[extents.Count * ExtentBytes];
        var rest = bytes.AsSpan();
        foreach (var e in extents)
        {
            ExtentLayout.VirtualBlock.Write(rest, e.VirtualBlock);
            ExtentLayout.Length.Write(rest, e.Length);
            ExtentLayout.StoreBlock.Write(rest, e.Zero ? 0 : e.StoreBlock);
            ExtentLayout.Kind.Write(rest, e.Zero ? ZeroKind : UpperKind);
            rest = rest[ExtentBytes..];
        }

        return bytes;
    }

    public static List<CheckpointExtent> DecodeSegment(ReadOnlySpan<byte> bytes, string where)
    {
        if (bytes.Length % ExtentBytes != 0)
        {
            throw new StoreFormatException($"{where}: a map segment of {bytes.Length} bytes is not whole extents");
        }

        var extents = new List<CheckpointExtent>(bytes.Length / ExtentBytes);
        for (; !bytes.IsEmpty; bytes = bytes[ExtentBytes..])
        {
            extents.Add(DecodeExtent(bytes, where));
        }

        return extents;
    }

    /// <summary>One extent (<see cref="ExtentLayout"/>); a kind other than upper or zeros is refused.</summary>
    internal static CheckpointExtent DecodeExtent(ReadOnlySpan<byte> bytes, string where)
    {
        ulong kind = ExtentLayout.Kind.Read(bytes);
        return kind is UpperKind or ZeroKind
            ? new CheckpointExtent(ExtentLayout.VirtualBlock.ReadSigned(bytes), ExtentLayout.Length.ReadSigned(bytes), kind == ZeroKind,
                ExtentLayout.StoreBlock.ReadSigned(bytes))
            : throw new StoreFormatException($"{where}: an extent of unknown kind {kind}");
    }

    private static ulong RootChecksum(ReadOnlySpan<byte> bytes) =>
        Checksums.Of(bytes[..RootLayout.Checksum.Offset], bytes[RootHeaderBytes..]);
}

/// <summary>A checkpoint root's header, in bytes; the part references (<see cref="PartLayout"/>) follow it, groups first.</summary>
internal static class RootLayout
{
    public static readonly BytesField Magic = new(0, 8);

    /// <summary>The first journal batch not folded into this checkpoint.</summary>
    public static readonly U64Field ReplaySequence = new(Magic.End);
    public static readonly U32Field InstanceCount = new(ReplaySequence.End);
    public static readonly U32Field GroupCount = new(InstanceCount.End);
    public static readonly U32Field SpacePageCount = new(GroupCount.End);
    public static readonly U32Field Reserved = new(SpacePageCount.End);

    /// <summary>The last data commit the checkpoint holds; 0 for none.</summary>
    public static readonly U64Field CommitsThrough = new(Reserved.End);
    public static readonly U64Field PayloadBytes = new(CommitsThrough.End);
    public static readonly U64Field Reserved2 = new(PayloadBytes.End);

    /// <summary>XXH64 of the header bytes before this field, followed by the payload.</summary>
    public static readonly U64Field Checksum = new(Reserved2.End);
}

/// <summary>A root's reference to a group or a space page.</summary>
internal static class PartLayout
{
    /// <summary>The group's number, or the page's.</summary>
    public static readonly U64Field Index = new(0);

    /// <summary>Where the part starts, in blocks.</summary>
    public static readonly U64Field StoreBlock = new(Index.End);

    /// <summary>The part's length, in bytes.</summary>
    public static readonly U32Field Bytes = new(StoreBlock.End);

    /// <summary>Instances in the group, or blocks marked in the page.</summary>
    public static readonly U32Field Count = new(Bytes.End);

    /// <summary>XXH64 of the part's bytes.</summary>
    public static readonly U64Field Checksum = new(Count.End);
}

/// <summary>What follows an instance's definition in its group: where its map segment is.</summary>
internal static class EntryLayout
{
    /// <summary>Where the segment starts, in blocks; 0: the map is empty and there is no segment.</summary>
    public static readonly U64Field SegmentBlock = new(0);

    /// <summary>The segment's length, in bytes (32 per extent).</summary>
    public static readonly U64Field SegmentBytes = new(SegmentBlock.End);

    /// <summary>XXH64 of the segment's bytes.</summary>
    public static readonly U64Field SegmentChecksum = new(SegmentBytes.End);
    public static readonly U64Field ExtentCount = new(SegmentChecksum.End);

    /// <summary>Upper blocks the map names (its footprint), in blocks.</summary>
    public static readonly U64Field UpperBlocks = new(ExtentCount.End);
}
