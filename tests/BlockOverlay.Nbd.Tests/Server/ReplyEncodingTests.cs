using System.Buffers;
using System.Buffers.Binary;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

public class ReplyEncodingTests
{
    private const int Block = ReadReply.HoleGranularity;

    /// <summary>Decodes structured chunks: (type, flags, offset, length) of each.</summary>
    private static List<(ReplyChunkType Type, ReplyFlags Flags, ulong Offset, long Length)> Chunks(byte[] wire, ulong cookie)
    {
        var chunks = new List<(ReplyChunkType, ReplyFlags, ulong, long)>();
        var rest = wire.AsSpan();
        while (!rest.IsEmpty)
        {
            Assert.That(BinaryPrimitives.ReadUInt32BigEndian(rest), Is.EqualTo(0x668e33efu));
            var flags = (ReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(rest[4..]);
            var type = (ReplyChunkType)BinaryPrimitives.ReadUInt16BigEndian(rest[6..]);
            Assert.That(BinaryPrimitives.ReadUInt64BigEndian(rest[8..]), Is.EqualTo(cookie));
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(rest[16..]);
            var payload = rest.Slice(20, length);
            ulong offset = BinaryPrimitives.ReadUInt64BigEndian(payload);
            long covered = type == ReplyChunkType.OffsetHole ? BinaryPrimitives.ReadUInt32BigEndian(payload[8..]) : length - 8;
            chunks.Add((type, flags, offset, covered));
            rest = rest[(20 + length)..];
        }

        return chunks;
    }

    private static byte[] Encode(OutgoingReply reply)
    {
        var writer = new ArrayBufferWriter<byte>();
        reply.WriteTo(writer);
        return writer.WrittenSpan.ToArray();
    }

    private static readonly RequestBuffers Buffers = new(new ServerCounters());

    private static byte[] Rented(byte[] content)
    {
        var buffer = Buffers.Rent(content.Length);
        content.CopyTo(buffer, 0);
        return buffer;
    }

    [Test]
    public void A_sparse_structured_read_sends_holes_for_zero_blocks_and_marks_the_last_chunk_done()
    {
        var content = new byte[4 * Block];
        content[Block + 5] = 1;          // block 1 has data
        content[3 * Block] = 1;          // block 3 has data
        ulong offset = 1 << 20;
        var chunks = Chunks(Encode(new ReadReply(Buffers, 9, offset, Rented(content), content.Length, structured: true, dontFragment: false)), 9);
        Assert.That(chunks, Is.EqualTo(new[]
        {
            (ReplyChunkType.OffsetHole, ReplyFlags.None, offset, (long)Block),
            (ReplyChunkType.OffsetData, ReplyFlags.None, offset + Block, (long)Block),
            (ReplyChunkType.OffsetHole, ReplyFlags.None, offset + (2 * Block), (long)Block),
            (ReplyChunkType.OffsetData, ReplyFlags.Done, offset + (3 * Block), (long)Block),
        }));
    }

    [Test]
    public void An_unaligned_read_is_split_on_aligned_block_boundaries()
    {
        var content = new byte[Block];
        content[^1] = 7;                  // only the tail, past the first boundary, has data
        ulong offset = Block - 100;       // the first block boundary is 100 bytes in
        var chunks = Chunks(Encode(new ReadReply(Buffers, 1, offset, Rented(content), content.Length, true, false)), 1);
        Assert.That(chunks, Is.EqualTo(new[]
        {
            (ReplyChunkType.OffsetHole, ReplyFlags.None, offset, 100L),
            (ReplyChunkType.OffsetData, ReplyFlags.Done, offset + 100, (long)Block - 100),
        }));
    }

    [Test]
    public void Dont_fragment_sends_exactly_one_content_chunk()
    {
        var mixed = new byte[3 * Block];
        mixed[Block] = 1;
        Assert.That(Chunks(Encode(new ReadReply(Buffers, 2, 0, Rented(mixed), mixed.Length, true, true)), 2),
            Is.EqualTo(new[] { (ReplyChunkType.OffsetData, ReplyFlags.Done, 0UL, (long)mixed.Length) }));
        var zeros = new byte[3 * Block];
        Assert.That(Chunks(Encode(new ReadReply(Buffers, 2, 0, Rented(zeros), zeros.Length, true, true)), 2),
            Is.EqualTo(new[] { (ReplyChunkType.OffsetHole, ReplyFlags.Done, 0UL, (long)zeros.Length) }));
    }

    [Test]
    public void A_simple_read_reply_is_header_then_data()
    {
        byte[] content = [1, 2, 3];
        var wire = Encode(new ReadReply(Buffers, 0xABCD, 0, Rented(content), 3, structured: false, dontFragment: false));
        Assert.That(wire, Is.EqualTo(new byte[] { 0x67, 0x44, 0x66, 0x98, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAB, 0xCD, 1, 2, 3 }));
    }

    [Test]
    public void Errors_are_structured_chunks_with_a_message_when_negotiated_and_simple_otherwise()
    {
        var structured = Encode(new StatusReply(5, NbdError.NoSpace, "full", structured: true));
        Assert.That(BinaryPrimitives.ReadUInt16BigEndian(structured.AsSpan(6)), Is.EqualTo((ushort)ReplyChunkType.Error));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(structured.AsSpan(20)), Is.EqualTo(28u));
        Assert.That(System.Text.Encoding.UTF8.GetString(structured.AsSpan(26)), Is.EqualTo("full"));

        var simple = Encode(new StatusReply(5, NbdError.NoSpace, "full", structured: false));
        Assert.That(simple, Has.Length.EqualTo(16));
        Assert.That(BinaryPrimitives.ReadUInt32BigEndian(simple.AsSpan(4)), Is.EqualTo(28u));
    }

    [Test]
    public void Block_status_descriptors_never_exceed_the_request_or_the_count()
    {
        List<(long, uint)> extents = [(100, 0), (200, 3), (50, 2)];
        Assert.That(BlockStatusRuns.ToDescriptors(extents, 250, 16), Is.EqualTo(new[]
        {
            new BlockStatusDescriptor(100, 0),
            new BlockStatusDescriptor(150, 3),
        }));
        Assert.That(BlockStatusRuns.ToDescriptors(extents, 1000, 1), Is.EqualTo(new[] { new BlockStatusDescriptor(100, 0) }));
        Assert.That(() => BlockStatusRuns.ToDescriptors([], 10, 16), Throws.InvalidOperationException);
        Assert.That(() => BlockStatusRuns.ToDescriptors([(0, 0)], 10, 16), Throws.InvalidOperationException);
    }

    /// <summary>
    /// A 1 MiB READ reply through the connection's pipe (as NbdConnection makes it) reaches the
    /// stream in a few writes, each one send(2): not one per 4 KiB segment of the pipe.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public async Task A_large_read_reply_reaches_the_socket_in_a_few_writes(bool structured)
    {
        var content = new byte[1 << 20];
        new Random(7).NextBytes(content);
        var socket = new WriteCountingStream();
        var pipe = System.IO.Pipelines.PipeWriter.Create(socket);
        var reply = new ReadReply(Buffers, 3, 0, Rented(content), content.Length, structured, dontFragment: false);
        reply.WriteTo(pipe);
        reply.Release();
        await pipe.FlushAsync();

        Assert.That(socket.Bytes, Is.EqualTo(content.Length + (structured ? 28 : 16)));
        Assert.That(socket.Writes, Is.LessThanOrEqualTo(3));
    }

    private sealed class WriteCountingStream : Stream
    {
        public int Writes { get; private set; }

        public long Bytes { get; private set; }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Count(count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Count(buffer.Length);
            return ValueTask.CompletedTask;
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        private void Count(int bytes)
        {
            Writes++;
            Bytes += bytes;
        }
    }
}
