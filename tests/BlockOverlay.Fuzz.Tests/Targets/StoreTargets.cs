using BlockOverlay.Store.Format;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>
/// The store's format decoders, each given bytes as recovery and the checker give them. The
/// documented way out for bad bytes is <see cref="StoreFormatException"/>; the decoders of a
/// definition's parts also throw <see cref="ArgumentOutOfRangeException"/> for a body too
/// short for its lengths, which their callers (record and checkpoint decoding) turn into
/// StoreFormatException. Anything else escaping is a bug.
/// </summary>
/// <remarks>
/// Checksums stand in front of every structure, and a fuzzer cannot forge an XXH64: the
/// checksummed targets decode the input as it is and then once more with every checksum (and
/// the checkpoint's length field) made to match, so mutations reach the decoding behind them.
/// </remarks>
internal static class StoreTargets
{
    /// <summary>What the superblock says the device holds is checked against this many blocks.</summary>
    private const long DeviceBlocks = 1L << 40;

    /// <summary>Journal input is cut to this many blocks (a batch is at most what the journal reads at once).</summary>
    private const int MaxBatchBlocks = 16;

    public static Outcome Superblock(ReadOnlySpan<byte> input)
    {
        byte[] block = new byte[Store.Format.Superblock.Size];
        input[..Math.Min(input.Length, block.Length)].CopyTo(block);
        var raw = Refusing(() => Store.Format.Superblock.Decode(block, "fuzz", DeviceBlocks));
        SuperblockLayout.Checksum.Write(block, Checksums.Of(block.AsSpan(..SuperblockLayout.Checksum.Offset)));
        var fixedUp = Refusing(() => Store.Format.Superblock.Decode(block, "fuzz", DeviceBlocks));
        return raw == Outcome.Accepted || fixedUp == Outcome.Accepted ? Outcome.Accepted : Outcome.Refused;
    }

    public static Outcome Journal(ReadOnlySpan<byte> input)
    {
        int blocks = Math.Clamp((input.Length + Store.Format.Superblock.Size - 1) / Store.Format.Superblock.Size, 1, MaxBatchBlocks);
        byte[] batch = new byte[blocks * Store.Format.Superblock.Size];
        input[..Math.Min(input.Length, batch.Length)].CopyTo(batch);
        var raw = DecodeBatch(batch);
        FixJournalChecksums(batch);
        var fixedUp = DecodeBatch(batch);
        return raw == Outcome.Accepted || fixedUp == Outcome.Accepted ? Outcome.Accepted : Outcome.Refused;
    }

    public static Outcome Checkpoint(ReadOnlySpan<byte> input)
    {
        byte[] bytes = input.ToArray();
        var raw = Refusing(() => CheckpointFormat.Decode(bytes, "fuzz"));
        if (bytes.Length < CheckpointFormat.HeaderBytes)
        {
            return raw;
        }

        CheckpointLayout.PayloadBytes.Write(bytes, (ulong)(bytes.Length - CheckpointFormat.HeaderBytes));
        CheckpointLayout.Checksum.Write(bytes, Checksums.Of(bytes.AsSpan(..CheckpointLayout.Checksum.Offset), bytes.AsSpan(CheckpointFormat.HeaderBytes)));
        var fixedUp = Refusing(() => CheckpointFormat.Decode(bytes, "fuzz"));
        return raw == Outcome.Accepted || fixedUp == Outcome.Accepted ? Outcome.Accepted : Outcome.Refused;
    }

    /// <summary>An incremental checkpoint's root, as recovery decodes it (the superblock keeps its checksum; here it is made to match).</summary>
    public static Outcome CheckpointRoot(ReadOnlySpan<byte> input)
    {
        byte[] bytes = input.ToArray();
        var raw = Refusing(() => CheckpointParts.DecodeRoot(bytes, "fuzz"));
        if (bytes.Length < CheckpointParts.RootHeaderBytes)
        {
            return raw;
        }

        RootLayout.PayloadBytes.Write(bytes, (ulong)(bytes.Length - CheckpointParts.RootHeaderBytes));
        RootLayout.Checksum.Write(bytes, Checksums.Of(bytes.AsSpan(..RootLayout.Checksum.Offset), bytes.AsSpan(CheckpointParts.RootHeaderBytes)));
        var fixedUp = Refusing(() => CheckpointParts.DecodeRoot(bytes, "fuzz"));
        return raw == Outcome.Accepted || fixedUp == Outcome.Accepted ? Outcome.Accepted : Outcome.Refused;
    }

    /// <summary>
    /// A checkpoint group with the count its root gives it: the input's first byte is the count
    /// (a root refuses others, but the decoder must too), the rest the group's bytes (their
    /// checksum is kept by the root, so there is none to match). Each entry's map segment is
    /// decoded from the same bytes as a segment too.
    /// </summary>
    public static Outcome CheckpointGroup(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return Outcome.Refused;
        }

        int count = (sbyte)input[0];
        byte[] bytes = input[1..].ToArray();
        var segment = Refusing(() => CheckpointParts.DecodeSegment(bytes, "fuzz"));
        var group = Refusing(() => CheckpointParts.DecodeGroup(bytes, count, "fuzz"));
        return group == Outcome.Accepted || segment == Outcome.Accepted ? Outcome.Accepted : Outcome.Refused;
    }

    public static Outcome Definition(ReadOnlySpan<byte> input)
    {
        byte[] bytes = input.ToArray();
        return Refusing(() => DefinitionFormat.Decode(bytes, "fuzz"), shortBodyToo: true);
    }

    public static Outcome Access(ReadOnlySpan<byte> input)
    {
        byte[] bytes = input.ToArray();
        return Refusing(() => AccessFormat.Decode(bytes, "fuzz"), shortBodyToo: true);
    }

    public static Outcome Qos(ReadOnlySpan<byte> input)
    {
        byte[] bytes = input.ToArray();
        return Refusing(() => QosFormat.Decode(bytes, "fuzz"));
    }

    /// <summary>As the journal's replay reads a batch: header, whole batch intact, then its commits.</summary>
    private static Outcome DecodeBatch(byte[] batch)
    {
        var storeId = new Guid(BatchLayout.StoreId.Of(batch.AsSpan()));
        ulong sequence = BatchLayout.Sequence.Read(batch);
        if (!JournalFormat.TryReadHeader(batch, storeId, sequence, batch.Length / Store.Format.Superblock.Size, out var header) ||
            !JournalFormat.IsIntact(batch.AsSpan(0, header.Blocks * Store.Format.Superblock.Size), header))
        {
            return Outcome.Refused;
        }

        return Refusing(() => JournalFormat.DecodeCommits(batch.AsSpan(0, header.Blocks * Store.Format.Superblock.Size), header, "fuzz"));
    }

    /// <summary>Makes every record's, commit's and the batch's checksum match, as far as their lengths can be followed.</summary>
    private static void FixJournalChecksums(byte[] batch)
    {
        int header = JournalFormat.BatchHeaderBytes;
        long payload = BatchLayout.PayloadBytes.Read(batch);
        var rest = batch.AsSpan(header, (int)Math.Min(payload, batch.Length - header));
        for (uint c = 0; c < BatchLayout.CommitCount.Read(batch) && rest.Length >= JournalFormat.CommitHeaderBytes; c++)
        {
            long length = CommitLayout.RecordsBytes.Read(rest);
            if (length > rest.Length - JournalFormat.CommitHeaderBytes)
            {
                break;
            }

            var records = rest.Slice(JournalFormat.CommitHeaderBytes, (int)length);
            var record = records;
            for (uint r = 0; r < CommitLayout.RecordCount.Read(rest) && record.Length >= JournalFormat.RecordHeaderBytes; r++)
            {
                int recordLength = RecordLayout.Length.Read(record);
                if (recordLength < JournalFormat.RecordHeaderBytes || recordLength > record.Length)
                {
                    break;
                }

                RecordLayout.Checksum.Write(record, Checksums.OfRecord(record[JournalFormat.RecordHeaderBytes..recordLength]));
                record = record[recordLength..];
            }

            CommitLayout.Checksum.Write(rest, Checksums.Of(records));
            rest = rest[(JournalFormat.CommitHeaderBytes + (int)length)..];
        }

        if (payload <= batch.Length - header)
        {
            BatchLayout.Checksum.Write(batch, Checksums.Of(batch.AsSpan(..BatchLayout.Checksum.Offset), batch.AsSpan(header, (int)payload)));
        }
    }

    private static Outcome Refusing<T>(Func<T> decode, bool shortBodyToo = false)
    {
        try
        {
            decode();
            return Outcome.Accepted;
        }
        catch (StoreFormatException)
        {
            return Outcome.Refused;
        }
        catch (ArgumentOutOfRangeException) when (shortBodyToo)
        {
            return Outcome.Refused;
        }
    }
}
