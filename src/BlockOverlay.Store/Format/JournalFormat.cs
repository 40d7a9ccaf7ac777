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

    /// <summary>Who may see and open the instance over NBD (<see cref="InstanceAccess.Open"/>: everyone).</summary>
    public InstanceAccess Access { get; init; } = InstanceAccess.Open;

    /// <summary>Its limits and weight (<see cref="InstanceQos.Default"/>: none, and the default weight).</summary>
    public InstanceQos Qos { get; init; } = InstanceQos.Default;

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

/// <summary>
/// The commit's instance may be seen and opened only by clients these rules name from now on
/// (none: by everyone). A create with rules writes one after its CreateInstance, so a build that
/// does not know rules refuses the journal instead of serving the instance to everyone.
/// </summary>
public sealed record SetAccessRecord(InstanceAccess Access) : JournalRecord;

/// <summary>
/// The commit's instance has these limits and this weight from now on. A create with settings
/// writes one after its CreateInstance, so the CreateInstance stays readable by builds before QoS.
/// </summary>
public sealed record SetQosRecord(InstanceQos Qos) : JournalRecord;

/// <summary>Records of one instance that become durable together.</summary>
public sealed record JournalCommit(uint InstanceId, IReadOnlyList<JournalRecord> Records)
{
    /// <summary>
    /// A data commit's place in the store's order of commits (replay skips it if the checkpoint
    /// it replays over stands at or after it); 0 for namespace records, and in stores written
    /// before commits were numbered: never skipped.
    /// </summary>
    public ulong Number { get; init; }
}

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
/// The bytes of a batch, a commit and each record: <see cref="BatchLayout"/>,
/// <see cref="CommitLayout"/>, <see cref="RecordLayout"/> and the bodies below, drawn in
/// docs/FORMAT.md ("Journal").
/// </remarks>
public static class JournalFormat
{
    public static int BatchHeaderBytes => BatchLayout.Checksum.End;
    public static int CommitHeaderBytes => CommitLayout.Checksum.End;
    public static int RecordHeaderBytes => RecordLayout.Checksum.End;
    private const uint CommitMagic = 0x54494D43; // "CMIT" as a little-endian u32
    private static ReadOnlySpan<byte> Magic => "BOVJRNL1"u8;

    private enum RecordType : byte
    {
        Map = 1,
        Zero = 2,
        CreateInstance = 16,
        DeleteInstance = 17,
        SetFlushMode = 18,
        SetQuota = 19,
        SetAccess = 20,
        SetQos = 21,
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

        Magic.CopyTo(BatchLayout.Magic.Of(batch));
        BatchLayout.Sequence.Write(batch, sequence);
        BatchLayout.Blocks.Write(batch, (uint)blocks);
        BatchLayout.PayloadBytes.Write(batch, (uint)payload);
        BatchLayout.Kind.Write(batch, (uint)kind);
        BatchLayout.CommitCount.Write(batch, (uint)commits.Count);
        storeId.TryWriteBytes(BatchLayout.StoreId.Of(batch));
        BatchLayout.Checksum.Write(batch, ChecksumOf(batch, payload));
        return blocks;
    }

    /// <summary>
    /// Reads a batch header from the first block of a candidate batch. False when there is
    /// no batch of this store with the expected sequence here (the end of the log).
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> firstBlock, Guid storeId, ulong expectedSequence, long maxBlocks, out BatchHeader header)
    {
        header = default;
        if (!StartsBatch(firstBlock, storeId, expectedSequence))
        {
            return false;
        }

        int blocks = (int)BatchLayout.Blocks.Read(firstBlock);
        int payload = (int)BatchLayout.PayloadBytes.Read(firstBlock);
        var kind = (BatchKind)BatchLayout.Kind.Read(firstBlock);
        if (blocks < 1 || blocks > maxBlocks || payload < 0 || BlocksFor(payload) != blocks || !Enum.IsDefined(kind))
        {
            return false;
        }

        header = new BatchHeader(expectedSequence, blocks, payload, kind, (int)BatchLayout.CommitCount.Read(firstBlock));
        return true;
    }

    /// <summary>Whether the block starts with the header of this store's batch with this sequence (its checksum not yet verified).</summary>
    public static bool StartsBatch(ReadOnlySpan<byte> firstBlock, Guid storeId, ulong sequence) =>
        BatchLayout.Magic.Of(firstBlock).SequenceEqual(Magic) && new Guid(BatchLayout.StoreId.Of(firstBlock)) == storeId &&
        BatchLayout.Sequence.Read(firstBlock) == sequence;

    /// <summary>Whether a whole batch (header included) matches its checksum: false for a torn write.</summary>
    public static bool IsIntact(ReadOnlySpan<byte> batch, BatchHeader header) =>
        BatchLayout.Checksum.Read(batch) == ChecksumOf(batch, header.PayloadBytes);

    /// <summary>XXH64 of the header before its checksum field, followed by the payload.</summary>
    private static ulong ChecksumOf(ReadOnlySpan<byte> batch, int payloadBytes) =>
        Checksums.Of(batch[..BatchLayout.Checksum.Offset], batch.Slice(BatchHeaderBytes, payloadBytes));

    /// <summary>
    /// The commits of an intact batch. A commit or record that fails its own checksum inside
    /// an intact batch is corruption, not a torn write: <see cref="StoreFormatException"/>.
    /// </summary>
    public static List<JournalCommit> DecodeCommits(ReadOnlySpan<byte> batch, BatchHeader header, string where)
    {
        // Counts are checked before they size anything: each commit takes at least its header.
        if ((uint)header.CommitCount > header.PayloadBytes / CommitHeaderBytes)
        {
            throw new StoreFormatException($"{where}: {(uint)header.CommitCount} commits cannot fit in {header.PayloadBytes} bytes");
        }

        var commits = new List<JournalCommit>(header.CommitCount);
        var rest = batch.Slice(BatchHeaderBytes, header.PayloadBytes);
        for (int i = 0; i < header.CommitCount; i++)
        {
            if (rest.Length < CommitHeaderBytes || CommitLayout.Magic.Read(rest) != CommitMagic)
            {
                throw new StoreFormatException($"{where}: commit {i} has no valid header");
            }

            uint instance = CommitLayout.InstanceId.Read(rest);
            int count = (int)CommitLayout.RecordCount.Read(rest);
            int length = (int)CommitLayout.RecordsBytes.Read(rest);
            if (length < 0 || length > rest.Length - CommitHeaderBytes)
            {
                throw new StoreFormatException($"{where}: commit {i} claims {length} bytes of records");
            }

            var records = rest.Slice(CommitHeaderBytes, length);
            if (CommitLayout.Checksum.Read(rest) != Checksums.Of(records))
            {
                throw new StoreFormatException($"{where}: commit {i} (instance {instance}) fails its checksum");
            }

            commits.Add(new JournalCommit(instance, DecodeRecords(records, count, $"{where}, commit {i}"))
            {
                Number = CommitLayout.Number.Read(rest),
            });
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
        CommitLayout.Magic.Write(destination, CommitMagic);
        CommitLayout.InstanceId.Write(destination, commit.InstanceId);
        CommitLayout.RecordCount.Write(destination, (uint)commit.Records.Count);
        CommitLayout.RecordsBytes.Write(destination, (uint)records.Length);
        CommitLayout.Number.Write(destination, commit.Number);
        CommitLayout.Checksum.Write(destination, Checksums.Of(records));
        return offset;
    }

    private static int BodySize(JournalRecord record) => record switch
    {
        MapRecord => MapBody.Length.End,
        ZeroRecord => ZeroBody.Length.End,
        CreateInstanceRecord c => DefinitionFormat.EncodedSize(c.Definition),
        DeleteInstanceRecord => 0,
        SetFlushModeRecord => SetFlushModeBody.ModeByte.End,
        SetQuotaRecord => SetQuotaBody.Quota.End,
        SetAccessRecord a => AccessFormat.EncodedSize(a.Access),
        SetQosRecord => QosFormat.EncodedSize,
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
                MapBody.VirtualBlock.Write(body, map.VirtualBlock);
                MapBody.StoreBlock.Write(body, map.StoreBlock);
                MapBody.Length.Write(body, map.Length);
                break;
            case ZeroRecord zero:
                type = RecordType.Zero;
                ZeroBody.VirtualBlock.Write(body, zero.VirtualBlock);
                ZeroBody.Length.Write(body, zero.Length);
                break;
            case CreateInstanceRecord create:
                type = RecordType.CreateInstance;
                DefinitionFormat.Encode(body, create.Definition);
                break;
            case DeleteInstanceRecord:
                type = RecordType.DeleteInstance;
                break;
            case SetFlushModeRecord mode:
                type = RecordType.SetFlushMode;
                SetFlushModeBody.ModeByte.Write(body, (byte)mode.FlushMode);
                break;
            case SetQuotaRecord quota:
                type = RecordType.SetQuota;
                SetQuotaBody.Quota.Write(body, quota.Quota);
                break;
            case SetAccessRecord access:
                type = RecordType.SetAccess;
                AccessFormat.Encode(body, 0, access.Access);
                break;
            case SetQosRecord qos:
                type = RecordType.SetQos;
                QosFormat.Encode(body, qos.Qos);
                break;
            default:
                throw new ArgumentException($"unknown record {record}");
        }

        RecordLayout.Type.Write(destination, (byte)type);
        RecordLayout.Reserved.Write(destination, 0);
        RecordLayout.Length.Write(destination, (ushort)length);
        RecordLayout.Checksum.Write(destination, Checksums.OfRecord(body));
        return length;
    }

    private static List<JournalRecord> DecodeRecords(ReadOnlySpan<byte> bytes, int count, string where)
    {
        // Each record takes at least its header.
        if ((uint)count > bytes.Length / RecordHeaderBytes)
        {
            throw new StoreFormatException($"{where}: {(uint)count} records cannot fit in {bytes.Length} bytes");
        }

        var records = new List<JournalRecord>(count);
        for (int i = 0; i < count; i++)
        {
            int length = bytes.Length >= RecordHeaderBytes ? RecordLayout.Length.Read(bytes) : 0;
            if (length < RecordHeaderBytes || length > bytes.Length)
            {
                throw new StoreFormatException($"{where}: record {i} has an impossible length {length}");
            }

            var body = bytes[RecordHeaderBytes..length];
            if (RecordLayout.Checksum.Read(bytes) != Checksums.OfRecord(body))
            {
                throw new StoreFormatException($"{where}: record {i} fails its checksum");
            }

            records.Add(DecodeRecord((RecordType)RecordLayout.Type.Read(bytes), body, $"{where}, record {i}"));
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
                    return new MapRecord(MapBody.VirtualBlock.ReadSigned(body), MapBody.StoreBlock.ReadSigned(body), MapBody.Length.ReadSigned(body));
                case RecordType.Zero:
                    return new ZeroRecord(ZeroBody.VirtualBlock.ReadSigned(body), ZeroBody.Length.ReadSigned(body));
                case RecordType.CreateInstance:
                    return new CreateInstanceRecord(DefinitionFormat.Decode(body, where));
                case RecordType.DeleteInstance:
                    return new DeleteInstanceRecord();
                case RecordType.SetFlushMode:
                    return new SetFlushModeRecord(InstanceDefinition.ReadModeByte(SetFlushModeBody.ModeByte.Read(body), where) is (var m, false)
                        ? m
                        : throw new StoreFormatException($"{where}: a flush mode record cannot mark an instance unclean"));
                case RecordType.SetQuota:
                    return new SetQuotaRecord(SetQuotaBody.Quota.ReadSigned(body));
                case RecordType.SetAccess:
                    return new SetAccessRecord(AccessFormat.Decode(body, where));
                case RecordType.SetQos:
                    return new SetQosRecord(QosFormat.Decode(body, where));
                default:
                    throw new StoreFormatException($"{where}: unknown record type {(byte)type} (written by a newer blockoverlay?)");
            }
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new StoreFormatException($"{where}: record body of {body.Length} bytes is too short for its type");
        }
    }
}
