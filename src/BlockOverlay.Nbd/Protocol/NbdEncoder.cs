using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace BlockOverlay.Nbd.Protocol;

/// <summary>
/// Encoders for everything the server sends, each writing one complete message into an
/// <see cref="IBufferWriter{T}"/>. Layouts are drawn in <see cref="NbdWire"/>.
/// </summary>
public static class NbdEncoder
{
    /// <summary>The largest piece of READ data copied into one buffer of the pipe (what the shared pool keeps).</summary>
    public const int PayloadPiece = 1 << 20;

    /// <summary>Greeting of the fixed newstyle handshake.</summary>
    public static void WriteGreeting(IBufferWriter<byte> writer, HandshakeFlags flags)
    {
        var span = writer.GetSpan(18);
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.InitMagic);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], NbdWire.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[16..], (ushort)flags);
        writer.Advance(18);
    }

    /// <summary>The reply to NBD_OPT_EXPORT_NAME: size, flags and, unless NO_ZEROES, 124 zeros.</summary>
    public static void WriteExportNameReply(IBufferWriter<byte> writer, ulong size, TransmissionFlags flags, bool noZeroes)
    {
        int length = 10 + (noZeroes ? 0 : NbdWire.ExportNameReplyZeroes);
        var span = writer.GetSpan(length)[..length];
        BinaryPrimitives.WriteUInt64BigEndian(span, size);
        BinaryPrimitives.WriteUInt16BigEndian(span[8..], (ushort)flags);
        span[10..].Clear();
        writer.Advance(length);
    }

    /// <summary>Header of an option reply; <paramref name="length"/> bytes of data must follow.</summary>
    public static void WriteOptionReplyHeader(IBufferWriter<byte> writer, uint option, OptionReplyType type, int length)
    {
        var span = writer.GetSpan(NbdWire.OptionReplyHeaderSize);
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdWire.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], (uint)type);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], (uint)length);
        writer.Advance(NbdWire.OptionReplyHeaderSize);
    }

    /// <summary>An option reply without data (ACK), or an error reply with a message for the user.</summary>
    public static void WriteOptionReply(IBufferWriter<byte> writer, uint option, OptionReplyType type, string message = "")
    {
        int length = Utf8Length(message);
        WriteOptionReplyHeader(writer, option, type, length);
        WriteUtf8(writer, message, length);
    }

    /// <summary>NBD_REP_SERVER: one export of NBD_OPT_LIST.</summary>
    public static void WriteServerReply(IBufferWriter<byte> writer, uint option, string name, string description)
    {
        int nameLength = Utf8Length(name);
        int descriptionLength = Utf8Length(description);
        WriteOptionReplyHeader(writer, option, OptionReplyType.Server, 4 + nameLength + descriptionLength);
        WriteUInt32(writer, (uint)nameLength);
        WriteUtf8(writer, name, nameLength);
        WriteUtf8(writer, description, descriptionLength);
    }

    /// <summary>NBD_REP_INFO with NBD_INFO_EXPORT: size and transmission flags.</summary>
    public static void WriteInfoExport(IBufferWriter<byte> writer, uint option, ulong size, TransmissionFlags flags)
    {
        WriteOptionReplyHeader(writer, option, OptionReplyType.Info, 12);
        var span = writer.GetSpan(12);
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)InfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(span[2..], size);
        BinaryPrimitives.WriteUInt16BigEndian(span[10..], (ushort)flags);
        writer.Advance(12);
    }

    /// <summary>NBD_REP_INFO with NBD_INFO_NAME or NBD_INFO_DESCRIPTION: a string.</summary>
    public static void WriteInfoString(IBufferWriter<byte> writer, uint option, InfoType type, string text)
    {
        int length = Utf8Length(text);
        WriteOptionReplyHeader(writer, option, OptionReplyType.Info, 2 + length);
        var span = writer.GetSpan(2);
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)type);
        writer.Advance(2);
        WriteUtf8(writer, text, length);
    }

    /// <summary>NBD_REP_INFO with NBD_INFO_BLOCK_SIZE: minimum, preferred, maximum payload.</summary>
    public static void WriteInfoBlockSize(IBufferWriter<byte> writer, uint option, BlockSizes sizes)
    {
        WriteOptionReplyHeader(writer, option, OptionReplyType.Info, 14);
        var span = writer.GetSpan(14);
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)InfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(span[2..], sizes.Minimum);
        BinaryPrimitives.WriteUInt32BigEndian(span[6..], sizes.Preferred);
        BinaryPrimitives.WriteUInt32BigEndian(span[10..], sizes.MaximumPayload);
        writer.Advance(14);
    }

    /// <summary>NBD_REP_META_CONTEXT: a context id and its name.</summary>
    public static void WriteMetaContextReply(IBufferWriter<byte> writer, uint option, uint contextId, string name)
    {
        int length = Utf8Length(name);
        WriteOptionReplyHeader(writer, option, OptionReplyType.MetaContext, 4 + length);
        WriteUInt32(writer, contextId);
        WriteUtf8(writer, name, length);
    }

    /// <summary>A simple reply header; a successful READ's data follows it.</summary>
    public static void WriteSimpleReply(IBufferWriter<byte> writer, ulong cookie, NbdError error)
    {
        var span = writer.GetSpan(NbdWire.SimpleReplyHeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(span[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
        writer.Advance(NbdWire.SimpleReplyHeaderSize);
    }

    /// <summary>A structured reply chunk header; <paramref name="length"/> bytes of payload follow.</summary>
    public static void WriteChunkHeader(IBufferWriter<byte> writer, ReplyFlags flags, ReplyChunkType type, ulong cookie, uint length)
    {
        var span = writer.GetSpan(NbdWire.StructuredReplyHeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(span, NbdWire.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(span[4..], (ushort)flags);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], (ushort)type);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], length);
        writer.Advance(NbdWire.StructuredReplyHeaderSize);
    }

    /// <summary>NBD_REPLY_TYPE_OFFSET_DATA: <paramref name="data"/> is the content at <paramref name="offset"/>.</summary>
    public static void WriteDataChunk(IBufferWriter<byte> writer, ulong cookie, ReplyFlags flags, ulong offset, ReadOnlySpan<byte> data)
    {
        WriteChunkHeader(writer, flags, ReplyChunkType.OffsetData, cookie, (uint)(8 + data.Length));
        WriteUInt64(writer, offset);
        WritePayload(writer, data);
    }

    /// <summary>
    /// READ data, copied in pieces of up to <see cref="PayloadPiece"/> that each ask for room of
    /// their own size. <c>IBufferWriter.Write</c> asks for no size and gets the pipe's minimum
    /// segment (4 KiB), and the pipe sends each segment with its own send(2): 256 per MiB.
    /// </summary>
    public static void WritePayload(IBufferWriter<byte> writer, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            int piece = Math.Min(data.Length, PayloadPiece);
            data[..piece].CopyTo(writer.GetSpan(piece));
            writer.Advance(piece);
            data = data[piece..];
        }
    }

    /// <summary>NBD_REPLY_TYPE_OFFSET_HOLE: <paramref name="length"/> bytes at <paramref name="offset"/> read as zeros.</summary>
    public static void WriteHoleChunk(IBufferWriter<byte> writer, ulong cookie, ReplyFlags flags, ulong offset, uint length)
    {
        WriteChunkHeader(writer, flags, ReplyChunkType.OffsetHole, cookie, 12);
        WriteUInt64(writer, offset);
        WriteUInt32(writer, length);
    }

    /// <summary>NBD_REPLY_TYPE_ERROR with DONE and a message for the user.</summary>
    public static void WriteErrorChunk(IBufferWriter<byte> writer, ulong cookie, NbdError error, string message)
    {
        // The message length field is 16 bits and strings are capped at 4096 bytes.
        int length = Math.Min(Utf8Length(message), NbdWire.MaxStringLength);
        WriteChunkHeader(writer, ReplyFlags.Done, ReplyChunkType.Error, cookie, (uint)(6 + length));
        WriteUInt32(writer, (uint)error);
        var span = writer.GetSpan(2);
        BinaryPrimitives.WriteUInt16BigEndian(span, (ushort)length);
        writer.Advance(2);
        WriteUtf8(writer, message, length);
    }

    /// <summary>NBD_REPLY_TYPE_BLOCK_STATUS: descriptors (length, flags) for one meta context.</summary>
    public static void WriteBlockStatusChunk(IBufferWriter<byte> writer, ulong cookie, ReplyFlags flags, uint contextId,
        ReadOnlySpan<BlockStatusDescriptor> descriptors)
    {
        WriteChunkHeader(writer, flags, ReplyChunkType.BlockStatus, cookie, (uint)(4 + (8 * descriptors.Length)));
        WriteUInt32(writer, contextId);
        foreach (var descriptor in descriptors)
        {
            WriteUInt32(writer, descriptor.Length);
            WriteUInt32(writer, descriptor.Flags);
        }
    }

    private static int Utf8Length(string text) => Encoding.UTF8.GetByteCount(text);

    /// <summary>Writes the first <paramref name="byteCount"/> bytes of the UTF-8 text.</summary>
    private static void WriteUtf8(IBufferWriter<byte> writer, string text, int byteCount)
    {
        if (byteCount == 0)
        {
            return;
        }

        byte[] encoded = Encoding.UTF8.GetBytes(text);
        writer.Write(encoded.AsSpan(0, byteCount));
    }

    private static void WriteUInt32(IBufferWriter<byte> writer, uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(writer.GetSpan(4), value);
        writer.Advance(4);
    }

    private static void WriteUInt64(IBufferWriter<byte> writer, ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(writer.GetSpan(8), value);
        writer.Advance(8);
    }
}

/// <summary>Block size constraints advertised with NBD_INFO_BLOCK_SIZE, in bytes.</summary>
public readonly record struct BlockSizes(uint Minimum, uint Preferred, uint MaximumPayload)
{
    /// <summary>
    /// Byte-granular requests (the exports do their own read-modify-write), 4 KiB preferred
    /// (the page and file system block size), 32 MiB payloads at most.
    /// </summary>
    public static BlockSizes Default { get; } = new(1, 4096, 32 * 1024 * 1024);
}

/// <summary>One block status descriptor: a length in bytes and context-defined flags.</summary>
public readonly record struct BlockStatusDescriptor(uint Length, uint Flags);
