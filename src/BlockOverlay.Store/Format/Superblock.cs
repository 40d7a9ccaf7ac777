using L = BlockOverlay.Store.Format.SuperblockLayout;

namespace BlockOverlay.Store.Format;

/// <summary>
/// The superblock: what the store is, where its parts are, and where recovery starts.
/// Two copies, in blocks 0 and 1; a write goes to copy <c>generation % 2</c>, so a torn
/// write can only damage the copy being replaced and the other still opens the store.
/// Its bytes: <see cref="SuperblockLayout"/>, drawn in docs/FORMAT.md ("Superblock").
/// </summary>
public sealed record Superblock
{
    public const int Size = 4096;
    public const uint CurrentVersion = 2; // 2: instances carry a flush mode
    /// <summary>Bytes of the block that hold fields; the rest up to the checksum is zero.</summary>
    public static int HeaderLength => L.Reserved.End;
    private const uint CleanFlag = 1; // bit 0 of Flags: shut down cleanly
    private static ReadOnlySpan<byte> Magic => "BOVSTORE"u8;

    /// <summary>
    /// Incompatible bit 0: the checkpoint holds access rules. A build that does not know rules
    /// would read past them and serve a restricted instance to everyone, so it must not open.
    /// </summary>
    public const ulong AccessRulesFeature = 1;

    /// <summary>
    /// Incompatible bit 1: the checkpoint holds QoS settings. Ignoring them would be safe, but a
    /// build before QoS cannot skip their bytes (it reads what follows the quota as access
    /// rules), so it must refuse the store with this bit's clear message instead.
    /// </summary>
    public const ulong QosFeature = 2;

    /// <summary>
    /// Incompatible bit 2: the checkpoint is incremental (a root naming groups, map segments and
    /// space pages: <see cref="CheckpointParts"/>), not one whole blob. A build before it would read
    /// the root as a whole checkpoint and fail on its magic, so it is told plainly instead. Clear:
    /// the older whole checkpoint (<see cref="CheckpointFormat"/>), which this build still opens and
    /// replaces with an incremental one at its first checkpoint.
    /// </summary>
    public const ulong IncrementalCheckpointFeature = 4;

    /// <summary>Feature bits this build understands.</summary>
    public const ulong KnownIncompatible = AccessRulesFeature | QosFeature | IncrementalCheckpointFeature, KnownReadOnlyCompatible = 0;

    /// <summary>Whether the checkpoint this superblock names is incremental (<see cref="IncrementalCheckpointFeature"/>).</summary>
    public bool IncrementalCheckpoint => (IncompatibleFeatures & IncrementalCheckpointFeature) != 0;

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
        var sb = block[..Size];
        sb.Clear();
        Magic.CopyTo(L.Magic.Of(sb));
        L.Version.Write(sb, Version);
        L.HeaderLength.Write(sb, (uint)HeaderLength);
        L.IncompatibleFeatures.Write(sb, IncompatibleFeatures);
        L.ReadOnlyCompatibleFeatures.Write(sb, ReadOnlyCompatibleFeatures);
        L.CompatibleFeatures.Write(sb, CompatibleFeatures);
        StoreId.TryWriteBytes(L.StoreId.Of(sb));
        L.Generation.Write(sb, Generation);
        L.BlockSize.Write(sb, Size);
        L.Flags.Write(sb, Clean ? CleanFlag : 0u);
        L.DeviceBlocks.Write(sb, DeviceBlocks);
        L.JournalStart.Write(sb, JournalStart);
        L.JournalBlocks.Write(sb, JournalBlocks);
        L.DataStart.Write(sb, DataStart);
        L.CheckpointStart.Write(sb, CheckpointStart);
        L.CheckpointBytes.Write(sb, CheckpointBytes);
        L.CheckpointChecksum.Write(sb, CheckpointChecksum);
        L.ReplayPosition.Write(sb, ReplayPosition);
        L.ReplaySequence.Write(sb, ReplaySequence);
        L.NextInstanceId.Write(sb, NextInstanceId);
        L.Checksum.Write(sb, Checksums.Of(sb[..L.Checksum.Offset]));
    }

    /// <summary>
    /// Decodes and validates one copy: the one place that decides whether a superblock is
    /// usable, with one specific message per problem. <paramref name="where"/> names the copy.
    /// </summary>
    public static Superblock Decode(ReadOnlySpan<byte> block, string where, long deviceBlocks)
    {
        if (!HasMagic(block))
        {
            throw new StoreFormatException($"{where}: no store here (magic is not BOVSTORE)");
        }

        if (L.Checksum.Read(block) != Checksums.Of(block[..L.Checksum.Offset]))
        {
            throw new StoreFormatException($"{where}: checksum mismatch (the superblock is corrupt)");
        }

        uint version = L.Version.Read(block);
        if (version != CurrentVersion)
        {
            throw new StoreFormatException($"{where}: format version {version}; this build reads version {CurrentVersion}");
        }

        var sb = new Superblock
        {
            Version = version,
            IncompatibleFeatures = L.IncompatibleFeatures.Read(block),
            ReadOnlyCompatibleFeatures = L.ReadOnlyCompatibleFeatures.Read(block),
            CompatibleFeatures = L.CompatibleFeatures.Read(block),
            StoreId = new Guid(L.StoreId.Of(block)),
            Generation = L.Generation.Read(block),
            Clean = (L.Flags.Read(block) & CleanFlag) != 0,
            DeviceBlocks = L.DeviceBlocks.ReadSigned(block),
            JournalStart = L.JournalStart.ReadSigned(block),
            JournalBlocks = L.JournalBlocks.ReadSigned(block),
            DataStart = L.DataStart.ReadSigned(block),
            CheckpointStart = L.CheckpointStart.ReadSigned(block),
            CheckpointBytes = L.CheckpointBytes.ReadSigned(block),
            CheckpointChecksum = L.CheckpointChecksum.Read(block),
            ReplayPosition = L.ReplayPosition.ReadSigned(block),
            ReplaySequence = L.ReplaySequence.Read(block),
            NextInstanceId = L.NextInstanceId.Read(block),
        };

        if ((sb.IncompatibleFeatures & ~KnownIncompatible) != 0)
        {
            throw new StoreFormatException(
                $"{where}: uses features this build does not know (incompatible 0x{sb.IncompatibleFeatures:x}); use a newer blockoverlay");
        }

        uint blockSize = L.BlockSize.Read(block);
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

    /// <summary>The incompatible features of a superblock naming an incremental checkpoint of instances so <paramref name="defined"/>.</summary>
    internal static ulong FeaturesOf(ulong incompatible, IReadOnlyCollection<InstanceDefinition> defined) =>
        Bit(Bit(incompatible, AccessRulesFeature, defined.Any(d => !d.Access.IsOpen)), QosFeature, defined.Any(d => !d.Qos.IsDefault)) |
        IncrementalCheckpointFeature;

    private static ulong Bit(ulong features, ulong bit, bool set) => set ? features | bit : features & ~bit;

    /// <summary>Whether a block starts with the superblock's magic: a store's superblock copy, valid or not.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> block) => L.Magic.Of(block).SequenceEqual(Magic);

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

/// <summary>
/// The superblock's fields, in bytes within its 4096-byte block (the table of
/// docs/FORMAT.md, "Superblock"). Block counts and positions are in 4096-byte blocks.
/// </summary>
internal static class SuperblockLayout
{
    public static readonly BytesField Magic = new(0, 8);
    public static readonly U32Field Version = new(Magic.End);
    public static readonly U32Field HeaderLength = new(Version.End);
    public static readonly U64Field IncompatibleFeatures = new(HeaderLength.End);
    public static readonly U64Field ReadOnlyCompatibleFeatures = new(IncompatibleFeatures.End);
    public static readonly U64Field CompatibleFeatures = new(ReadOnlyCompatibleFeatures.End);
    public static readonly BytesField StoreId = new(CompatibleFeatures.End, 16);
    public static readonly U64Field Generation = new(StoreId.End);
    public static readonly U32Field BlockSize = new(Generation.End);
    public static readonly U32Field Flags = new(BlockSize.End);
    public static readonly U64Field DeviceBlocks = new(Flags.End);
    public static readonly U64Field JournalStart = new(DeviceBlocks.End);
    public static readonly U64Field JournalBlocks = new(JournalStart.End);
    public static readonly U64Field DataStart = new(JournalBlocks.End);
    public static readonly U64Field CheckpointStart = new(DataStart.End);
    public static readonly U64Field CheckpointBytes = new(CheckpointStart.End);
    public static readonly U64Field CheckpointChecksum = new(CheckpointBytes.End);
    public static readonly U64Field ReplayPosition = new(CheckpointChecksum.End);
    public static readonly U64Field ReplaySequence = new(ReplayPosition.End);
    public static readonly U32Field NextInstanceId = new(ReplaySequence.End);
    public static readonly U32Field Reserved = new(NextInstanceId.End);

    /// <summary>The block's last 8 bytes: XXH64 of every byte before it.</summary>
    public static readonly U64Field Checksum = new(Superblock.Size - 8);
}
