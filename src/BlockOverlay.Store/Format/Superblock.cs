using System.Buffers.Binary;

namespace BlockOverlay.Store.Format;

/// <summary>
/// The superblock: what the store is, where its parts are, and where recovery starts.
/// Two copies, in blocks 0 and 1; a write goes to copy <c>generation % 2</c>, so a torn
/// write can only damage the copy being replaced and the other still opens the store.
/// </summary>
/// <remarks>
/// Layout (little-endian, offsets in bytes within the 4096-byte block):
/// <code>
///    0  u8[8]  magic "BOVSTORE"
///    8  u32    format version (1)
///   12  u32    header length in bytes (152; the rest up to the checksum is zero)
///   16  u64    incompatible features: unknown bits refuse to open
///   24  u64    read-only compatible features: unknown bits open read-only
///   32  u64    compatible features: unknown bits are ignored
///   40  u8[16] store id (random, also stamped on every journal batch)
///   56  u64    generation: +1 on every superblock write
///   64  u32    block size in bytes (4096)
///   68  u32    flags: bit 0 = shut down cleanly
///   72  u64    device size in blocks
///   80  u64    journal start, in blocks
///   88  u64    journal length, in blocks
///   96  u64    data region start, in blocks (it runs to the end of the device)
///  104  u64    checkpoint start, in blocks (0 = none yet)
///  112  u64    checkpoint length, in bytes
///  120  u64    checkpoint checksum (XXH64 of its bytes)
///  128  u64    journal replay position, in blocks from the journal start
///  136  u64    journal replay sequence: the batch expected at that position
///  144  u32    next instance id
///  148  u32    reserved (0)
/// 4088  u64    checksum: XXH64 of bytes [0, 4088)
/// </code>
/// </remarks>
public sealed record Superblock
{
    public const int Size = 4096;
    public const uint CurrentVersion = 2; // 2: instances carry a flush mode
    public const int HeaderLength = 152;
    private const int ChecksumOffset = Size - 8;
    private static ReadOnlySpan<byte> Magic => "BOVSTORE"u8;

    /// <summary>Feature bits this build understands (none yet, in every class).</summary>
    public const ulong KnownIncompatible = 0, KnownReadOnlyCompatible = 0;

    public uint Version { get; init; } = CurrentVersion;
    public ulong IncompatibleFeatures { get; init; }
    public ulong ReadOnlyCompatibleFeatures { get; init; }
    public ulong CompatibleFeatures { get; init; }
    public required Guid StoreId { get; init; }
    public ulong Generation { get; init; }
    public bool Clean { get; init; }
    public required long DeviceBlocks { get; init; }
    public required long JournalStart { get; init; }
    public required long JournalBlocks { get; init; }
    public required long DataStart { get; init; }
    public long CheckpointStart { get; init; }
    public long CheckpointBytes { get; init; }
    public ulong CheckpointChecksum { get; init; }
    public long ReplayPosition { get; init; }
    public ulong ReplaySequence { get; init; } = 1;
    public uint NextInstanceId { get; init; } = 1;

    /// <summary>Which of the two copies (block 0 or 1) this generation is written to.</summary>
    public long CopyBlock => (long)(Generation % 2);

    public void Encode(Span<byte> block)
    {
        block[..Size].Clear();
        Magic.CopyTo(block);
        BinaryPrimitives.WriteUInt32LittleEndian(block[8..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(block[12..], HeaderLength);
        BinaryPrimitives.WriteUInt64LittleEndian(block[16..], IncompatibleFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(block[24..], ReadOnlyCompatibleFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(block[32..], CompatibleFeatures);
        StoreId.TryWriteBytes(block[40..56]);
        BinaryPrimitives.WriteUInt64LittleEndian(block[56..], Generation);
        BinaryPrimitives.WriteUInt32LittleEndian(block[64..], Size);
        BinaryPrimitives.WriteUInt32LittleEndian(block[68..], Clean ? 1u : 0u);
        BinaryPrimitives.WriteInt64LittleEndian(block[72..], DeviceBlocks);
        BinaryPrimitives.WriteInt64LittleEndian(block[80..], JournalStart);
        BinaryPrimitives.WriteInt64LittleEndian(block[88..], JournalBlocks);
        BinaryPrimitives.WriteInt64LittleEndian(block[96..], DataStart);
        BinaryPrimitives.WriteInt64LittleEndian(block[104..], CheckpointStart);
        BinaryPrimitives.WriteInt64LittleEndian(block[112..], CheckpointBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(block[120..], CheckpointChecksum);
        BinaryPrimitives.WriteInt64LittleEndian(block[128..], ReplayPosition);
        BinaryPrimitives.WriteUInt64LittleEndian(block[136..], ReplaySequence);
        BinaryPrimitives.WriteUInt32LittleEndian(block[144..], NextInstanceId);
        BinaryPrimitives.WriteUInt64LittleEndian(block[ChecksumOffset..], Checksums.Of(block[..ChecksumOffset]));
    }

    /// <summary>
    /// Decodes and validates one copy: the one place that decides whether a superblock is
    /// usable, with one specific message per problem. <paramref name="where"/> names the copy.
    /// </summary>
    public static Superblock Decode(ReadOnlySpan<byte> block, string where, long deviceBlocks)
    {
        if (!block[..8].SequenceEqual(Magic))
        {
            throw new StoreFormatException($"{where}: no store here (magic is not BOVSTORE)");
        }

        ulong stored = BinaryPrimitives.ReadUInt64LittleEndian(block[ChecksumOffset..]);
        if (stored != Checksums.Of(block[..ChecksumOffset]))
        {
            throw new StoreFormatException($"{where}: checksum mismatch (the superblock is corrupt)");
        }

        uint version = BinaryPrimitives.ReadUInt32LittleEndian(block[8..]);
        if (version != CurrentVersion)
        {
            throw new StoreFormatException($"{where}: format version {version}; this build reads version {CurrentVersion}");
        }

        var sb = new Superblock
        {
            Version = version,
            IncompatibleFeatures = BinaryPrimitives.ReadUInt64LittleEndian(block[16..]),
            ReadOnlyCompatibleFeatures = BinaryPrimitives.ReadUInt64LittleEndian(block[24..]),
            CompatibleFeatures = BinaryPrimitives.ReadUInt64LittleEndian(block[32..]),
            StoreId = new Guid(block[40..56]),
            Generation = BinaryPrimitives.ReadUInt64LittleEndian(block[56..]),
            Clean = (BinaryPrimitives.ReadUInt32LittleEndian(block[68..]) & 1) != 0,
            DeviceBlocks = BinaryPrimitives.ReadInt64LittleEndian(block[72..]),
            JournalStart = BinaryPrimitives.ReadInt64LittleEndian(block[80..]),
            JournalBlocks = BinaryPrimitives.ReadInt64LittleEndian(block[88..]),
            DataStart = BinaryPrimitives.ReadInt64LittleEndian(block[96..]),
            CheckpointStart = BinaryPrimitives.ReadInt64LittleEndian(block[104..]),
            CheckpointBytes = BinaryPrimitives.ReadInt64LittleEndian(block[112..]),
            CheckpointChecksum = BinaryPrimitives.ReadUInt64LittleEndian(block[120..]),
            ReplayPosition = BinaryPrimitives.ReadInt64LittleEndian(block[128..]),
            ReplaySequence = BinaryPrimitives.ReadUInt64LittleEndian(block[136..]),
            NextInstanceId = BinaryPrimitives.ReadUInt32LittleEndian(block[144..]),
        };

        if ((sb.IncompatibleFeatures & ~KnownIncompatible) != 0)
        {
            throw new StoreFormatException(
                $"{where}: uses features this build does not know (incompatible 0x{sb.IncompatibleFeatures:x}); use a newer blockoverlay");
        }

        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(block[64..]);
        if (blockSize != Size)
        {
            throw new StoreFormatException($"{where}: block size {blockSize}; this build uses {Size}");
        }

        if (sb.DeviceBlocks > deviceBlocks)
        {
            throw new StoreFormatException(
                $"{where}: the store was made for {sb.DeviceBlocks} blocks but the device has {deviceBlocks} (truncated?)");
        }

        sb.CheckGeometry(where);
        return sb;
    }

    /// <summary>Unknown read-only-compatible features: the store may be read, never written.</summary>
    public bool RequiresReadOnly => (ReadOnlyCompatibleFeatures & ~KnownReadOnlyCompatible) != 0;

    private void CheckGeometry(string where)
    {
        bool sane = JournalStart == 2 && JournalBlocks >= 2 && DataStart == JournalStart + JournalBlocks &&
                    DataStart < DeviceBlocks && ReplayPosition >= 0 && ReplayPosition < JournalBlocks &&
                    (CheckpointStart == 0 || (CheckpointStart >= DataStart && CheckpointBytes > 0 &&
                                              CheckpointStart + BlocksFor(CheckpointBytes) <= DeviceBlocks));
        if (!sane)
        {
            throw new StoreFormatException($"{where}: inconsistent geometry (journal {JournalStart}+{JournalBlocks}, " +
                                           $"data from {DataStart}, checkpoint {CheckpointStart}+{CheckpointBytes} bytes, " +
                                           $"replay at {ReplayPosition}, device {DeviceBlocks} blocks)");
        }
    }

    public static long BlocksFor(long bytes) => (bytes + Size - 1) / Size;
}
