using System.Buffers.Binary;
using System.Text;

namespace BlockOverlay.Store.Format;

/// <summary>An instance as the store records it.</summary>
/// <param name="Id">Store-wide instance id, never reused.</param>
/// <param name="Name">The export name.</param>
/// <param name="VirtualSize">Size of the virtual disk in bytes (a multiple of 4096).</param>
/// <param name="Base">The base image, or null for an instance over zeros.</param>
/// <param name="FlushMode">What a flush of the instance makes durable (kept for the engine, which acts on it).</param>
/// <param name="Unclean">
/// A <see cref="FlushMode.Volatile"/> instance that was in use when the store crashed: its content is
/// whatever reached the store, not a state any flush promised. Cleared only by setting a flush mode.
/// </param>
/// <param name="Quota">Most bytes of upper data the instance may hold (a multiple of 4096); 0 for no quota.</param>
public sealed record InstanceDefinition(uint Id, string Name, long VirtualSize, BaseIdentity? Base,
    FlushMode FlushMode = FlushMode.Isolated, bool Unclean = false, long Quota = 0)
{
    private const byte UncleanBit = 0x80;

    /// <summary>The mode and the unclean mark, as one byte on disk.</summary>
    internal byte ModeByte => (byte)((byte)FlushMode | (Unclean ? UncleanBit : 0));

    /// <summary>Reads <see cref="ModeByte"/> back; an unknown mode is a newer format, not a default.</summary>
    internal static (FlushMode Mode, bool Unclean) ReadModeByte(byte value, string where)
    {
        var mode = (FlushMode)(value & ~UncleanBit);
        return Enum.IsDefined(mode)
            ? (mode, (value & UncleanBit) != 0)
            : throw new StoreFormatException($"{where}: unknown flush mode {value & ~UncleanBit} (written by a newer blockoverlay?)");
    }
}

/// <summary>What a flush of an instance does (one byte on disk).</summary>
public enum FlushMode : byte
{
    /// <summary>A flush makes the instance's own writes durable, and nothing of anyone else's.</summary>
    Isolated = 0,
    /// <summary>A flush writes back and commits every instance (the whole-filesystem syncfs baseline).</summary>
    Global = 1,
    /// <summary>Flushes are acknowledged without making anything durable; after a crash the instance is unclean.</summary>
    Volatile = 2,
}

/// <summary>What identifies a base image: where it is, its size in bytes, and a content fingerprint.</summary>
public sealed record BaseIdentity(string Path, long Size, ulong Fingerprint);

/// <summary>One change to the store's metadata.</summary>
public abstract record JournalRecord;

/// <summary>Virtual blocks [VirtualBlock, +Length) of the commit's instance live at store blocks [StoreBlock, +Length).</summary>
public sealed record MapRecord(long VirtualBlock, long StoreBlock, long Length) : JournalRecord;

/// <summary>Virtual blocks [VirtualBlock, +Length) of the commit's instance read as zeros (their upper blocks are freed).</summary>
public sealed record ZeroRecord(long VirtualBlock, long Length) : JournalRecord;

/// <summary>The commit's instance comes into being.</summary>
public sealed record CreateInstanceRecord(InstanceDefinition Definition) : JournalRecord;

/// <summary>The commit's instance is gone and every block it owned is free.</summary>
public sealed record DeleteInstanceRecord : JournalRecord;

/// <summary>The commit's instance flushes in this mode from now on.</summary>
public sealed record SetFlushModeRecord(FlushMode FlushMode) : JournalRecord;

/// <summary>The commit's instance may hold at most this many bytes of upper data from now on (0: no quota).</summary>
public sealed record SetQuotaRecord(long Quota) : JournalRecord;

/// <summary>Records of one instance that become durable together.</summary>
public sealed record JournalCommit(uint InstanceId, IReadOnlyList<JournalRecord> Records);

/// <summary>The header of a journal batch, once its checksum has been verified.</summary>
public readonly record struct BatchHeader(ulong Sequence, int Blocks, int PayloadBytes, BatchKind Kind, int CommitCount);

/// <summary>What a batch holds.</summary>
public enum BatchKind : uint
{
    /// <summary>Commits.</summary>
    Commits = 1,
    /// <summary>Nothing: the rest of the journal region is unused, the next batch is at its start.</summary>
    Wrap = 2,
}

/// <summary>
/// The journal's encoding. The journal is a circular region of blocks written in
/// <i>batches</i>: each starts on a block boundary, holds one or more commits (group
/// commit), and is written with one durable write. Batches carry consecutive sequence
/// numbers, so replay knows where the log ends: the first position whose batch is not
/// the next sequence, not of this store, or fails its checksum.
/// </summary>
/// <remarks>
/// Batch (little-endian; a batch is <c>Blocks</c> whole blocks):
/// <code>
///  0  u8[8]  magic "BOVJRNL1"
///  8  u64    sequence number
/// 16  u32    length in blocks (this block included)
/// 20  u32    payload length in bytes (commits, from byte 64)
/// 24  u32    kind: 1 = commits, 2 = wrap
/// 28  u32    commit count
/// 32  u8[16] store id
/// 48  u64    reserved (0)
/// 56  u64    checksum: XXH64 of header bytes [0, 56) followed by the payload
/// 64         commits, then zero padding to the block boundary
/// </code>
/// Commit: <c>u32 magic "CMIT", u32 instance id, u32 record count, u32 records length in bytes,
/// u64 reserved, u64 XXH64 of the records</c> (32 bytes), then the records.
/// Record: <c>u8 type, u8 reserved, u16 length in bytes (header included), u32 XXH32 of the body</c>
/// (8 bytes), then the body: Map (1): u64 virtual block, u64 store block, u64 length in blocks;
/// Zero (2): u64 virtual block, u64 length in blocks; CreateInstance (16): u32 id, u64 virtual
/// size in bytes, u64 base size in bytes, u64 base fingerprint, u16 name length, name (UTF-8),
/// u16 base path length, base path (UTF-8; empty = no base); DeleteInstance (17): empty.
/// </remarks>
public static class JournalFormat
{
    public const int BatchHeaderBytes = 64;
    public const int CommitHeaderBytes = 32;
    public const int RecordHeaderBytes = 8;
    private const uint CommitMagic = 0x54494D43; // "CMIT"
    private static ReadOnlySpan<byte> Magic => "BOVJRNL1"u8;

    private enum RecordType : byte
    {
        Map = 1,
        Zero = 2,
        CreateInstance = 16,
        DeleteInstance = 17,
        SetFlushMode = 18,
        SetQuota = 19,
    }

    /// <summary>Bytes a commit takes in a batch's payload.</summary>
    public static int EncodedSize(JournalCommit commit) =>
        CommitHeaderBytes + commit.Records.Sum(r => RecordHeaderBytes + BodySize(r));

    /// <summary>Whole blocks a batch of commits with this payload size takes.</summary>
    public static int BlocksFor(int payloadBytes) => (BatchHeaderBytes + payloadBytes + Superblock.Size - 1) / Superblock.Size;

    /// <summary>Encodes a batch into <paramref name="destination"/> (which must hold <see cref="BlocksFor"/> blocks).</summary>
    public static int EncodeBatch(Span<byte> destination, Guid storeId, ulong sequence, BatchKind kind, IReadOnlyList<JournalCommit> commits)
    {
        int payload = commits.Sum(EncodedSize);
        int blocks = BlocksFor(payload);
        var batch = destination[..(blocks * Superblock.Size)];
        batch.Clear();
        int offset = BatchHeaderBytes;
        foreach (var commit in commits)
        {
            offset += EncodeCommit(batch[offset..], commit);
        }

        Magic.CopyTo(batch);
        BinaryPrimitives.WriteUInt64LittleEndian(batch[8..], sequence);
        BinaryPrimitives.WriteUInt32LittleEndian(batch[16..], (uint)blocks);
        BinaryPrimitives.WriteUInt32LittleEndian(batch[20..], (uint)payload);
        BinaryPrimitives.WriteUInt32LittleEndian(batch[24..], (uint)kind);
        BinaryPrimitives.WriteUInt32LittleEndian(batch[28..], (uint)commits.Count);
        storeId.TryWriteBytes(batch[32..48]);
        BinaryPrimitives.WriteUInt64LittleEndian(batch[56..], Checksums.Of(batch[..56], batch.Slice(BatchHeaderBytes, payload)));
        return blocks;
    }

    /// <summary>
    /// Reads a batch header from the first block of a candidate batch. False when there is
    /// no batch of this store with the expected sequence here (the end of the log).
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> firstBlock, Guid storeId, ulong expectedSequence, long maxBlocks, out BatchHeader header)
    {
        header = default;
        if (!firstBlock[..8].SequenceEqual(Magic) || new Guid(firstBlock[32..48]) != storeId ||
            BinaryPrimitives.ReadUInt64LittleEndian(firstBlock[8..]) != expectedSequence)
        {
            return false;
        }

        int blocks = (int)BinaryPrimitives.ReadUInt32LittleEndian(firstBlock[16..]);
        int payload = (int)BinaryPrimitives.ReadUInt32LittleEndian(firstBlock[20..]);
        var kind = (BatchKind)BinaryPrimitives.ReadUInt32LittleEndian(firstBlock[24..]);
        if (blocks < 1 || blocks > maxBlocks || payload < 0 || BlocksFor(payload) != blocks || !Enum.IsDefined(kind))
        {
            return false;
        }

        header = new BatchHeader(expectedSequence, blocks, payload, kind, (int)BinaryPrimitives.ReadUInt32LittleEndian(firstBlock[28..]));
        return true;
    }

    /// <summary>Whether a whole batch (header included) matches its checksum: false for a torn write.</summary>
    public static bool IsIntact(ReadOnlySpan<byte> batch, BatchHeader header) =>
        BinaryPrimitives.ReadUInt64LittleEndian(batch[56..]) ==
        Checksums.Of(batch[..56], batch.Slice(BatchHeaderBytes, header.PayloadBytes));

    /// <summary>
    /// The commits of an intact batch. A commit or record that fails its own checksum inside
    /// an intact batch is corruption, not a torn write: <see cref="StoreFormatException"/>.
    /// </summary>
    public static List<JournalCommit> DecodeCommits(ReadOnlySpan<byte> batch, BatchHeader header, string where)
    {
        var commits = new List<JournalCommit>(header.CommitCount);
        var rest = batch.Slice(BatchHeaderBytes, header.PayloadBytes);
        for (int i = 0; i < header.CommitCount; i++)
        {
            if (rest.Length < CommitHeaderBytes || BinaryPrimitives.ReadUInt32LittleEndian(rest) != CommitMagic)
            {
                throw new StoreFormatException($"{where}: commit {i} has no valid header");
            }

            uint instance = BinaryPrimitives.ReadUInt32LittleEndian(rest[4..]);
            int count = (int)BinaryPrimitives.ReadUInt32LittleEndian(rest[8..]);
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(rest[12..]);
            if (length < 0 || length > rest.Length - CommitHeaderBytes)
            {
                throw new StoreFormatException($"{where}: commit {i} claims {length} bytes of records");
            }

            var records = rest.Slice(CommitHeaderBytes, length);
            if (BinaryPrimitives.ReadUInt64LittleEndian(rest[24..]) != Checksums.Of(records))
            {
                throw new StoreFormatException($"{where}: commit {i} (instance {instance}) fails its checksum");
            }

            commits.Add(new JournalCommit(instance, DecodeRecords(records, count, $"{where}, commit {i}")));
            rest = rest[(CommitHeaderBytes + length)..];
        }

        return commits;
    }

    private static int EncodeCommit(Span<byte> destination, JournalCommit commit)
    {
        int offset = CommitHeaderBytes;
        foreach (var record in commit.Records)
        {
            offset += EncodeRecord(destination[offset..], record);
        }

        var records = destination[CommitHeaderBytes..offset];
        BinaryPrimitives.WriteUInt32LittleEndian(destination, CommitMagic);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], commit.InstanceId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], (uint)commit.Records.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], (uint)records.Length);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], Checksums.Of(records));
        return offset;
    }

    private static int BodySize(JournalRecord record) => record switch
    {
        MapRecord => 24,
        ZeroRecord => 16,
        CreateInstanceRecord c => 4 + 8 + 8 + 8 + 2 + Encoding.UTF8.GetByteCount(c.Definition.Name) +
                                  2 + Encoding.UTF8.GetByteCount(c.Definition.Base?.Path ?? string.Empty) + 1 + 8,
        DeleteInstanceRecord => 0,
        SetFlushModeRecord => 1,
        SetQuotaRecord => 8,
        _ => throw new ArgumentException($"unknown record {record}"),
    };

    private static int EncodeRecord(Span<byte> destination, JournalRecord record)
    {
        int length = RecordHeaderBytes + BodySize(record);
        var body = destination[RecordHeaderBytes..length];
        RecordType type;
        switch (record)
        {
            case MapRecord map:
                type = RecordType.Map;
                BinaryPrimitives.WriteInt64LittleEndian(body, map.VirtualBlock);
                BinaryPrimitives.WriteInt64LittleEndian(body[8..], map.StoreBlock);
                BinaryPrimitives.WriteInt64LittleEndian(body[16..], map.Length);
                break;
            case ZeroRecord zero:
                type = RecordType.Zero;
                BinaryPrimitives.WriteInt64LittleEndian(body, zero.VirtualBlock);
                BinaryPrimitives.WriteInt64LittleEndian(body[8..], zero.Length);
                break;
            case CreateInstanceRecord create:
                type = RecordType.CreateInstance;
                var d = create.Definition;
                BinaryPrimitives.WriteUInt32LittleEndian(body, d.Id);
                BinaryPrimitives.WriteInt64LittleEndian(body[4..], d.VirtualSize);
                BinaryPrimitives.WriteInt64LittleEndian(body[12..], d.Base?.Size ?? 0);
                BinaryPrimitives.WriteUInt64LittleEndian(body[20..], d.Base?.Fingerprint ?? 0);
                int at = WriteString(body, 28, d.Name);
                at = WriteString(body, at, d.Base?.Path ?? string.Empty);
                body[at] = d.ModeByte;
                BinaryPrimitives.WriteInt64LittleEndian(body[(at + 1)..], d.Quota);
                break;
            case DeleteInstanceRecord:
                type = RecordType.DeleteInstance;
                break;
            case SetFlushModeRecord mode:
                type = RecordType.SetFlushMode;
                body[0] = (byte)mode.FlushMode;
                break;
            case SetQuotaRecord quota:
                type = RecordType.SetQuota;
                BinaryPrimitives.WriteInt64LittleEndian(body, quota.Quota);
                break;
            default:
                throw new ArgumentException($"unknown record {record}");
        }

        destination[0] = (byte)type;
        destination[1] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(destination[2..], (ushort)length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], Checksums.OfRecord(body));
        return length;
    }

    private static List<JournalRecord> DecodeRecords(ReadOnlySpan<byte> bytes, int count, string where)
    {
        var records = new List<JournalRecord>(count);
        for (int i = 0; i < count; i++)
        {
            int length = bytes.Length >= RecordHeaderBytes ? BinaryPrimitives.ReadUInt16LittleEndian(bytes[2..]) : 0;
            if (length < RecordHeaderBytes || length > bytes.Length)
            {
                throw new StoreFormatException($"{where}: record {i} has an impossible length {length}");
            }

            var body = bytes[RecordHeaderBytes..length];
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes[4..]) != Checksums.OfRecord(body))
            {
                throw new StoreFormatException($"{where}: record {i} fails its checksum");
            }

            records.Add(DecodeRecord((RecordType)bytes[0], body, $"{where}, record {i}"));
            bytes = bytes[length..];
        }

        return records;
    }

    private static JournalRecord DecodeRecord(RecordType type, ReadOnlySpan<byte> body, string where)
    {
        try
        {
            switch (type)
            {
                case RecordType.Map:
                    return new MapRecord(BinaryPrimitives.ReadInt64LittleEndian(body), BinaryPrimitives.ReadInt64LittleEndian(body[8..]),
                        BinaryPrimitives.ReadInt64LittleEndian(body[16..]));
                case RecordType.Zero:
                    return new ZeroRecord(BinaryPrimitives.ReadInt64LittleEndian(body), BinaryPrimitives.ReadInt64LittleEndian(body[8..]));
                case RecordType.CreateInstance:
                    uint id = BinaryPrimitives.ReadUInt32LittleEndian(body);
                    long size = BinaryPrimitives.ReadInt64LittleEndian(body[4..]);
                    long baseSize = BinaryPrimitives.ReadInt64LittleEndian(body[12..]);
                    ulong fingerprint = BinaryPrimitives.ReadUInt64LittleEndian(body[20..]);
                    string name = ReadString(body, 28, out int at);
                    string path = ReadString(body, at, out at);
                    var identity = path.Length == 0 ? null : new BaseIdentity(path, baseSize, fingerprint);
                    var (mode, unclean) = InstanceDefinition.ReadModeByte(body[at], where);
                    long quota = BinaryPrimitives.ReadInt64LittleEndian(body[(at + 1)..]);
                    return new CreateInstanceRecord(new InstanceDefinition(id, name, size, identity, mode, unclean, quota));
                case RecordType.DeleteInstance:
                    return new DeleteInstanceRecord();
                case RecordType.SetFlushMode:
                    return new SetFlushModeRecord(InstanceDefinition.ReadModeByte(body[0], where) is (var m, false)
                        ? m
                        : throw new StoreFormatException($"{where}: a flush mode record cannot mark an instance unclean"));
                case RecordType.SetQuota:
                    return new SetQuotaRecord(BinaryPrimitives.ReadInt64LittleEndian(body));
                default:
                    throw new StoreFormatException($"{where}: unknown record type {(byte)type} (written by a newer blockoverlay?)");
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new StoreFormatException($"{where}: record body of {body.Length} bytes is too short for its type");
        }
    }

    private static int WriteString(Span<byte> body, int at, string text)
    {
        int length = Encoding.UTF8.GetBytes(text, body[(at + 2)..]);
        BinaryPrimitives.WriteUInt16LittleEndian(body[at..], (ushort)length);
        return at + 2 + length;
    }

    private static string ReadString(ReadOnlySpan<byte> body, int at, out int next)
    {
        int length = BinaryPrimitives.ReadUInt16LittleEndian(body[at..]);
        next = at + 2 + length;
        return Encoding.UTF8.GetString(body.Slice(at + 2, length));
    }
}
