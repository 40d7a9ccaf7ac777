using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>
/// The seed corpus, made by the encoders the server and the store write with (and, for NBD,
/// by a client stream as libnbd sends it): `seed DIR` writes them as DIR/TARGET/seed-NAME, the
/// files committed under Corpus/. Each is a valid input its harness accepts whole (the corpus
/// replay test checks that), so the fuzzer starts from the paths real bytes take.
/// </summary>
internal static class Seeds
{
    public static IEnumerable<(string Target, string Name, byte[] Bytes)> All()
    {
        foreach (var (name, bytes) in Handshakes())
        {
            yield return ("nbd-handshake", name, bytes);
        }

        foreach (var (name, bytes) in RequestStreams())
        {
            yield return ("nbd-request", name, bytes);
        }

        yield return ("store-superblock", "valid", SuperblockSeed());
        yield return ("store-journal", "commits", JournalSeed());
        yield return ("store-checkpoint", "two-instances", WholeCheckpoint(7, 41, [
            new CheckpointInstance(Plain, [new CheckpointExtent(0, 4, false, 300), new CheckpointExtent(8, 2, true, 0)]),
            new CheckpointInstance(Restricted, [new CheckpointExtent(16, 1, false, 320)]),
        ]));
        yield return ("store-checkpoint-root", "two-groups-a-page", CheckpointParts.EncodeRoot(new CheckpointRoot(7, 41, 3,
            [new PartRef(0, 300, 120, 2, 0x1111), new PartRef(1, 302, 60, 1, 0x2222)], [new PartRef(0, 304, CheckpointParts.SpacePageBytes, 9, 0x3333)])));
        yield return ("store-checkpoint-group", "two-instances", [2, .. CheckpointParts.EncodeGroup([
            new GroupEntry(Plain, new SegmentRef(500, 2L * CheckpointParts.ExtentBytes, 0xabc, 2, 5)),
            new GroupEntry(Restricted, SegmentRef.None)])]);
        yield return ("store-checkpoint-group", "a-segment", [1, .. CheckpointParts.EncodeSegment([
            new CheckpointExtent(0, 4, false, 300), new CheckpointExtent(8, 2, true, 0)])]);
        yield return ("store-definition", "plain", Definition(Plain));
        yield return ("store-definition", "restricted", Definition(Restricted));
        yield return ("store-access", "rules", Access(Restricted.Access));
        yield return ("store-access", "open", Access(InstanceAccess.Open));
        yield return ("store-qos", "limits", Qos(Restricted.Qos));
    }

    private static InstanceDefinition Plain { get; } = new(1, "disk", 1L << 30, null);

    private static InstanceDefinition Restricted { get; } =
        new(2, "tenant-a", 1L << 30, new BaseIdentity("/srv/base.img", 1L << 29, 0x1234_5678_9abc_def0), FlushMode.Volatile, Unclean: true, Quota: 1L << 28)
        {
            Access = new InstanceAccess([new AccessRule(AccessKind.Uid, 1000), new AccessRule(AccessKind.Gid, 100), AccessRule.Certificate("CN=tenant-a, O=example")]),
            Qos = new InstanceQos(5000, 100L << 20, 300),
        };

    private static IEnumerable<(string, byte[])> Handshakes()
    {
        const ClientFlags both = ClientFlags.FixedNewstyle | ClientFlags.NoZeroes;
        yield return ("go-and-requests", new ClientBytes().Flags(both)
            .Option(NbdOption.StructuredReply, [])
            .MetaContext(NbdOption.ListMetaContext, "disk")
            .MetaContext(NbdOption.SetMetaContext, "disk", "base:allocation")
            .Choose(NbdOption.Info, "disk", InfoType.Name, InfoType.Description, InfoType.BlockSize)
            .Choose(NbdOption.Go, "disk")
            .Request(NbdCommand.Write, CommandFlags.Fua, 1, 4096, 512, new byte[512])
            .Request(NbdCommand.Read, CommandFlags.None, 2, 0, 8192)
            .Request(NbdCommand.BlockStatus, CommandFlags.None, 3, 0, 65536)
            .Request(NbdCommand.Disconnect, CommandFlags.None, 4, 0, 0)
            .ToArray());
        yield return ("list-abort", new ClientBytes().Flags(both)
            .Option(NbdOption.List, [])
            .Option(NbdOption.Abort, [])
            .ToArray());
        yield return ("starttls-unknown-export-name", new ClientBytes().Flags(ClientFlags.FixedNewstyle)
            .Option(NbdOption.StartTls, [])
            .Option((NbdOption)99, [1, 2, 3])
            .Option(NbdOption.ExportName, "ro"u8)
            .Request(NbdCommand.Read, CommandFlags.None, 1, 0, 4096)
            .Request(NbdCommand.Disconnect, CommandFlags.None, 2, 0, 0)
            .ToArray());
    }

    /// <summary>Shape byte (see <see cref="NbdTargets.Requests"/>), then requests.</summary>
    private static IEnumerable<(string, byte[])> RequestStreams()
    {
        yield return ("simple-replies", Shaped(0, new ClientBytes()
            .Request(NbdCommand.Write, CommandFlags.None, 1, 0, 512, new byte[512])
            .Request(NbdCommand.Read, CommandFlags.Fua, 2, 0, 4096)
            .Request(NbdCommand.Flush, CommandFlags.None, 3, 0, 0)
            .Request(NbdCommand.Trim, CommandFlags.None, 4, 8192, 4096)
            .Request(NbdCommand.WriteZeroes, CommandFlags.NoHole, 5, 16384, 4096)
            .Request(NbdCommand.Cache, CommandFlags.None, 6, 0, 65536)
            .Request(NbdCommand.Disconnect, CommandFlags.None, 7, 0, 0)));
        yield return ("structured", Shaped(3, new ClientBytes()
            .Request(NbdCommand.Write, CommandFlags.None, 1, 4096, 512, new byte[512])
            .Request(NbdCommand.Read, CommandFlags.DontFragment, 2, 0, 16384)
            .Request(NbdCommand.BlockStatus, CommandFlags.RequestOne, 3, 0, 1 << 20)
            .Request(NbdCommand.WriteZeroes, CommandFlags.FastZero, 4, 0, 4096)
            .Request(NbdCommand.Disconnect, CommandFlags.None, 5, 0, 0)));
        yield return ("read-only", Shaped(5, new ClientBytes()
            .Request(NbdCommand.Read, CommandFlags.None, 1, 4096, 4096)
            .Request(NbdCommand.Write, CommandFlags.None, 2, 0, 16, new byte[16])
            .Request(NbdCommand.Disconnect, CommandFlags.None, 3, 0, 0)));
    }

    private static byte[] Shaped(byte shape, ClientBytes requests) => [shape, .. requests.ToArray()];

    /// <summary>The superblock's fields only: the harness pads the block with zeros and fixes its checksum.</summary>
    private static byte[] SuperblockSeed()
    {
        byte[] block = new byte[Superblock.Size];
        new Superblock
        {
            StoreId = new Guid("6f1c9a52-3e0b-4d7a-9f21-5b8e0c4d2a17"),
            Generation = 5,
            Clean = true,
            DeviceBlocks = 1 << 18,
            JournalStart = 2,
            JournalBlocks = 1024,
            DataStart = 1026,
            CheckpointStart = 2000,
            CheckpointBytes = 9000,
            CheckpointChecksum = 42,
            ReplayPosition = 17,
            ReplaySequence = 99,
            NextInstanceId = 3,
            IncompatibleFeatures = Superblock.AccessRulesFeature | Superblock.QosFeature,
        }.Encode(block);
        return block[..Superblock.HeaderLength];
    }

    /// <summary>One batch of two commits holding every kind of record; trailing zeros cut (the harness pads to whole blocks).</summary>
    private static byte[] JournalSeed()
    {
        JournalCommit[] commits =
        [
            new(2, [new CreateInstanceRecord(Restricted), new SetAccessRecord(Restricted.Access), new SetQosRecord(Restricted.Qos)]),
            new(1, [new MapRecord(0, 2000, 4), new ZeroRecord(8, 2), new SetFlushModeRecord(FlushMode.Global), new SetQuotaRecord(1L << 20), new DeleteInstanceRecord()])
            {
                Number = 12,
            },
        ];
        byte[] batch = new byte[JournalFormat.BlocksFor(commits.Sum(JournalFormat.EncodedSize)) * Superblock.Size];
        JournalFormat.EncodeBatch(batch, new Guid("6f1c9a52-3e0b-4d7a-9f21-5b8e0c4d2a17"), 99, BatchKind.Commits, commits);
        return batch[..(JournalFormat.BatchHeaderBytes + commits.Sum(JournalFormat.EncodedSize))];
    }

    /// <summary>
    /// A whole checkpoint (the form before incremental checkpoints, which stores written then
    /// still open from): the header, then per instance its definition and its extents.
    /// </summary>
    private static byte[] WholeCheckpoint(ulong replaySequence, ulong commitsThrough, IReadOnlyList<CheckpointInstance> instances)
    {
        var payload = new List<byte>();
        foreach (var instance in instances)
        {
            byte[] definition = Definition(instance.Definition);
            byte[] counts = new byte[10];
            new U16Field(0).Write(counts, (ushort)definition.Length);
            new U64Field(2).Write(counts, (ulong)instance.Extents.Count);
            payload.AddRange(counts[..2]);
            payload.AddRange(definition);
            payload.AddRange(counts[2..]);
            foreach (var e in instance.Extents)
            {
                byte[] extent = new byte[ExtentLayout.Kind.End];
                ExtentLayout.VirtualBlock.Write(extent, e.VirtualBlock);
                ExtentLayout.Length.Write(extent, e.Length);
                ExtentLayout.StoreBlock.Write(extent, e.Zero ? 0 : e.StoreBlock);
                ExtentLayout.Kind.Write(extent, e.Zero ? 2ul : 1ul);
                payload.AddRange(extent);
            }
        }

        byte[] bytes = new byte[CheckpointFormat.HeaderBytes + payload.Count];
        "BOVCKPT1"u8.CopyTo(bytes);
        CheckpointLayout.ReplaySequence.Write(bytes, replaySequence);
        CheckpointLayout.InstanceCount.Write(bytes, (uint)instances.Count);
        CheckpointLayout.PayloadBytes.Write(bytes, (ulong)payload.Count);
        CheckpointLayout.CommitsThrough.Write(bytes, commitsThrough);
        payload.CopyTo(bytes, CheckpointFormat.HeaderBytes);
        CheckpointLayout.Checksum.Write(bytes, Checksums.Of(bytes.AsSpan(..CheckpointLayout.Checksum.Offset), bytes.AsSpan(CheckpointFormat.HeaderBytes)));
        return bytes;
    }

    private static byte[] Definition(InstanceDefinition definition)
    {
        byte[] bytes = new byte[DefinitionFormat.EncodedSize(definition)];
        DefinitionFormat.Encode(bytes, definition);
        return bytes;
    }

    private static byte[] Access(InstanceAccess access)
    {
        byte[] bytes = new byte[AccessFormat.EncodedSize(access)];
        AccessFormat.Encode(bytes, 0, access);
        return bytes;
    }

    private static byte[] Qos(InstanceQos qos)
    {
        byte[] bytes = new byte[QosFormat.EncodedSize];
        QosFormat.Encode(bytes, qos);
        return bytes;
    }
}
