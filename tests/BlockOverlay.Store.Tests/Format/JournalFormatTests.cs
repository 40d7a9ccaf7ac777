using System.Buffers.Binary;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests.Format;

public class JournalFormatTests
{
    private static readonly Guid Store = Guid.NewGuid();

    private static readonly JournalCommit[] Commits =
    [
        new(3, [new MapRecord(10, 5000, 16), new ZeroRecord(100, 2)]) { Number = 0x0102030405060708 },
        new(4, [new CreateInstanceRecord(new InstanceDefinition(4, "web-é", 1 << 30, new BaseIdentity("/images/base.raw", 12345, 0xABCDEF)))]),
        new(5, [new DeleteInstanceRecord()]),
    ];

    private static (byte[] Batch, BatchHeader Header) Encode(ulong sequence = 9)
    {
        int payload = Commits.Sum(JournalFormat.EncodedSize);
        var bytes = new byte[JournalFormat.BlocksFor(payload) * Superblock.Size];
        JournalFormat.EncodeBatch(bytes, Store, sequence, BatchKind.Commits, Commits);
        Assert.That(JournalFormat.TryReadHeader(bytes, Store, sequence, 256, out var header), Is.True);
        return (bytes, header);
    }

    [Test]
    public void A_batch_round_trips_its_commits_and_records()
    {
        var (batch, header) = Encode();
        Assert.That(JournalFormat.IsIntact(batch, header), Is.True);
        var decoded = JournalFormat.DecodeCommits(batch, header, "test");
        Assert.That(decoded.Select(c => c.InstanceId), Is.EqualTo(new uint[] { 3, 4, 5 }));
        Assert.That(decoded.Select(c => c.Number), Is.EqualTo(new ulong[] { 0x0102030405060708, 0, 0 }));
        Assert.That(decoded[0].Records, Is.EqualTo(Commits[0].Records));
        Assert.That(decoded[1].Records, Is.EqualTo(Commits[1].Records));
        Assert.That(decoded[2].Records, Is.EqualTo(Commits[2].Records));
    }

    [Test]
    public void Another_sequence_or_store_is_not_this_batch()
    {
        var (batch, _) = Encode(sequence: 9);
        Assert.That(JournalFormat.TryReadHeader(batch, Store, 10, 256, out _), Is.False);
        Assert.That(JournalFormat.TryReadHeader(batch, Guid.NewGuid(), 9, 256, out _), Is.False);
    }

    [Test]
    public void A_flip_anywhere_in_the_payload_makes_the_batch_torn()
    {
        var (good, header) = Encode();
        for (int offset = JournalFormat.BatchHeaderBytes; offset < JournalFormat.BatchHeaderBytes + header.PayloadBytes; offset++)
        {
            var bad = (byte[])good.Clone();
            bad[offset] ^= 0x01;
            Assert.That(JournalFormat.IsIntact(bad, header), Is.False, $"byte {offset}");
        }
    }

    [Test]
    public void A_record_that_fails_its_checksum_inside_an_intact_batch_is_corruption()
    {
        var (batch, header) = Encode();
        // Flip a byte of the first record's body, then re-seal the commit and the batch so
        // only the record checksum can catch it.
        int commit = JournalFormat.BatchHeaderBytes;
        int body = commit + JournalFormat.CommitHeaderBytes + JournalFormat.RecordHeaderBytes;
        batch[body] ^= 0x01;
        ResealFirstCommit(batch, header);

        Assert.That(JournalFormat.IsIntact(batch, header), Is.True);
        Assert.That(() => JournalFormat.DecodeCommits(batch, header, "batch 9"),
            Throws.TypeOf<StoreFormatException>().With.Message.Contains("record 0 fails its checksum"));
    }

    /// <summary>
    /// Found by coverage-guided fuzzing (store-access, then the journal): a record whose body is
    /// too short for its type, with every checksum right, threw IndexOutOfRangeException where the
    /// type's first field is one byte (a flush mode, an access rule's kind), which recovery and
    /// the checker do not expect; it is corruption like any other short body.
    /// </summary>
    [TestCase((byte)16)] // CreateInstance
    [TestCase((byte)18)] // SetFlushMode: its one byte
    [TestCase((byte)20)] // SetAccess
    [TestCase((byte)21)] // SetQos
    public void A_record_with_a_body_too_short_for_its_type_is_corruption(byte type)
    {
        // Commit 5 holds one DeleteInstance record, whose body is empty: give it another type.
        var (batch, header) = Encode();
        int commit = JournalFormat.BatchHeaderBytes + JournalFormat.EncodedSize(Commits[0]) + JournalFormat.EncodedSize(Commits[1]);
        batch[commit + JournalFormat.CommitHeaderBytes + RecordLayout.Type.Offset] = type;
        ResealCommit(batch, header, commit);

        Assert.That(JournalFormat.IsIntact(batch, header), Is.True);
        Assert.That(() => JournalFormat.DecodeCommits(batch, header, "batch 9"), Throws.TypeOf<StoreFormatException>());
    }

    private static void ResealFirstCommit(byte[] batch, BatchHeader header) => ResealCommit(batch, header, JournalFormat.BatchHeaderBytes);

    /// <summary>Makes the checksums of the commit at <paramref name="commit"/> and of the batch match what they hold now.</summary>
    private static void ResealCommit(byte[] batch, BatchHeader header, int commit)
    {
        int recordsLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(batch.AsSpan(commit + CommitLayout.RecordsBytes.Offset));
        BinaryPrimitives.WriteUInt64LittleEndian(batch.AsSpan(commit + CommitLayout.Checksum.Offset),
            K4os.Hash.xxHash.XXH64.DigestOf(batch.AsSpan(commit + JournalFormat.CommitHeaderBytes, recordsLength)));
        var state = new K4os.Hash.xxHash.XXH64.State();
        K4os.Hash.xxHash.XXH64.Reset(ref state);
        K4os.Hash.xxHash.XXH64.Update(ref state, batch.AsSpan(0, BatchLayout.Checksum.Offset));
        K4os.Hash.xxHash.XXH64.Update(ref state, batch.AsSpan(JournalFormat.BatchHeaderBytes, header.PayloadBytes));
        BinaryPrimitives.WriteUInt64LittleEndian(batch.AsSpan(BatchLayout.Checksum.Offset), K4os.Hash.xxHash.XXH64.Digest(state));
    }

    [Test]
    public void Checkpoint_parts_round_trip_and_a_flipped_root_byte_is_refused()
    {
        var root = new CheckpointRoot(77, 1234, 3, [new PartRef(0, 500, 300, 3, 0x1122)], [new PartRef(2, 510, 4096, 17, 0x3344)]);
        var bytes = CheckpointParts.EncodeRoot(root);
        var decoded = CheckpointParts.DecodeRoot(bytes, "test");
        Assert.That((decoded.ReplaySequence, decoded.CommitsThrough, decoded.InstanceCount), Is.EqualTo((77UL, 1234UL, 3)));
        Assert.That(decoded.Groups, Is.EqualTo(root.Groups));
        Assert.That(decoded.SpacePages, Is.EqualTo(root.SpacePages));
        for (int offset = 0; offset < bytes.Length; offset += 5)
        {
            var bad = (byte[])bytes.Clone();
            bad[offset] ^= 0x80;
            Assert.That(() => CheckpointParts.DecodeRoot(bad, "root"), Throws.TypeOf<StoreFormatException>(), $"byte {offset}");
        }

        var entries = new List<GroupEntry>
        {
            new(new InstanceDefinition(1, "a", 4096 * 100, null), new SegmentRef(600, 64, 0x55, 2, 10)),
            new(new InstanceDefinition(2, "b", 4096 * 8, new BaseIdentity("/b.raw", 999, 7)), SegmentRef.None),
        };
        Assert.That(CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup(entries), 2, "group"), Is.EqualTo(entries));
        Assert.That(() => CheckpointParts.DecodeGroup(CheckpointParts.EncodeGroup(entries), 1, "group"),
            Throws.TypeOf<StoreFormatException>().With.Message.Contains("after the last instance"));

        List<CheckpointExtent> extents = [new(0, 10, false, 500), new(20, 5, true, 0)];
        Assert.That(CheckpointParts.DecodeSegment(CheckpointParts.EncodeSegment(extents), "segment"), Is.EqualTo(extents));
    }

    /// <summary>
    /// Found by coverage-guided fuzzing (store-checkpoint): a count read from the bytes sized a
    /// list before anything checked it, so a sealed checkpoint or batch whose count has its top
    /// bit set threw ArgumentOutOfRangeException out of the decoder, and a merely huge count
    /// asked for gigabytes before failing. A count the bytes cannot hold is corruption.
    /// </summary>
    [Test]
    public void A_count_larger_than_its_bytes_can_hold_is_corruption()
    {
        const uint count = 0x8000_0002;
        // A whole checkpoint (the form stores before incremental checkpoints open from), no payload.
        var checkpoint = new byte[CheckpointFormat.HeaderBytes];
        "BOVCKPT1"u8.CopyTo(checkpoint);
        CheckpointLayout.InstanceCount.Write(checkpoint, count);
        var state = new K4os.Hash.xxHash.XXH64.State();
        K4os.Hash.xxHash.XXH64.Reset(ref state);
        K4os.Hash.xxHash.XXH64.Update(ref state, checkpoint.AsSpan(0, CheckpointLayout.Checksum.Offset));
        K4os.Hash.xxHash.XXH64.Update(ref state, checkpoint.AsSpan(CheckpointFormat.HeaderBytes));
        CheckpointLayout.Checksum.Write(checkpoint, K4os.Hash.xxHash.XXH64.Digest(state));
        Assert.That(() => CheckpointFormat.Decode(checkpoint, "checkpoint"), Throws.TypeOf<StoreFormatException>(), "instances");

        var (batch, header) = Encode();
        Assert.That(() => JournalFormat.DecodeCommits(batch, header with { CommitCount = unchecked((int)count) }, "batch 9"),
            Throws.TypeOf<StoreFormatException>(), "commits");

        CommitLayout.RecordCount.Write(batch.AsSpan(JournalFormat.BatchHeaderBytes), count);
        ResealFirstCommit(batch, header);
        Assert.That(() => JournalFormat.DecodeCommits(batch, header, "batch 9"), Throws.TypeOf<StoreFormatException>(), "records");
    }
}
