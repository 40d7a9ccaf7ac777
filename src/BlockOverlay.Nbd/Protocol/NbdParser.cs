using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace BlockOverlay.Nbd.Protocol;

/// <summary>
/// Pure parsers for what a client sends. The <c>TryRead…</c> functions take the bytes
/// received so far: when the message is incomplete they return false and leave the
/// buffer untouched; when it is complete they slice the buffer past it. Malformed input
/// throws <see cref="NbdProtocolException"/> (the connection ends) or
/// <see cref="NbdOptionException"/> (the option is answered with that error).
/// </summary>
public static class NbdParser
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The client's 32-bit flags after the greeting.</summary>
    public static bool TryReadClientFlags(ref ReadOnlySequence<byte> buffer, out ClientFlags flags)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (!reader.TryReadBigEndian(out int raw))
        {
            flags = default;
            return false;
        }

        flags = (ClientFlags)(uint)raw;
        // "the server MUST drop the TCP connection if the client sets an unknown flag"
        const ClientFlags known = ClientFlags.FixedNewstyle | ClientFlags.NoZeroes;
        if ((flags & ~known) != 0)
        {
            throw new NbdProtocolException($"client sent unknown handshake flags 0x{(uint)flags:x8}");
        }

        buffer = buffer.Slice(reader.Position);
        return true;
    }

    /// <summary>An option request header (its data is read separately).</summary>
    public static bool TryReadOptionHeader(ref ReadOnlySequence<byte> buffer, out OptionHeader header)
    {
        var reader = new SequenceReader<byte>(buffer);
        if (reader.Remaining < NbdWire.OptionHeaderSize)
        {
            header = default;
            return false;
        }

        reader.TryReadBigEndian(out long magic);
        reader.TryReadBigEndian(out int option);
        reader.TryReadBigEndian(out int length);
        if ((ulong)magic != NbdWire.OptionMagic)
        {
            throw new NbdProtocolException($"bad option magic 0x{(ulong)magic:x16}");
        }

        header = new OptionHeader((uint)option, (uint)length);
        buffer = buffer.Slice(reader.Position);
        return true;
    }

    /// <summary>A transmission request header (a WRITE's payload is read separately).</summary>
    public static bool TryReadRequest(ref ReadOnlySequence<byte> buffer, out NbdRequest request)
    {
        if (buffer.Length < NbdWire.RequestHeaderSize)
        {
            request = default;
            return false;
        }

        Span<byte> raw = stackalloc byte[NbdWire.RequestHeaderSize];
        buffer.Slice(0, NbdWire.RequestHeaderSize).CopyTo(raw);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(raw);
        if (magic != NbdWire.RequestMagic)
        {
            throw new NbdProtocolException($"bad request magic 0x{magic:x8}");
        }

        request = new NbdRequest(
            (CommandFlags)BinaryPrimitives.ReadUInt16BigEndian(raw[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(raw[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(raw[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(raw[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(raw[24..]));
        buffer = buffer.Slice(NbdWire.RequestHeaderSize);
        return true;
    }

    /// <summary>
    /// Data of NBD_OPT_INFO / NBD_OPT_GO:
    /// <c>u32 name length, name, u16 request count, u16 requests[count]</c>.
    /// </summary>
    public static ExportInfoRequest ParseExportInfoRequest(ReadOnlySpan<byte> data)
    {
        var cursor = new SpanCursor(data);
        string name = cursor.ReadString("export name");
        ushort count = cursor.ReadUInt16("information request count");
        if (cursor.Remaining != count * 2)
        {
            throw Invalid($"{count} information requests need {count * 2} bytes, {cursor.Remaining} were sent");
        }

        var requests = new InfoType[count];
        for (int i = 0; i < count; i++)
        {
            requests[i] = (InfoType)cursor.ReadUInt16("information request");
        }

        return new ExportInfoRequest(name, requests);
    }

    /// <summary>
    /// Data of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT:
    /// <c>u32 name length, name, u32 query count, (u32 length, query)[count]</c>.
    /// </summary>
    public static MetaContextRequest ParseMetaContextRequest(ReadOnlySpan<byte> data)
    {
        var cursor = new SpanCursor(data);
        string name = cursor.ReadString("export name");
        uint count = cursor.ReadUInt32("query count");
        // Each query takes at least its 4-byte length: a larger count cannot be honest.
        if (count > cursor.Remaining / 4)
        {
            throw Invalid($"{count} queries cannot fit in the {cursor.Remaining} bytes sent");
        }

        var queries = new string[count];
        for (int i = 0; i < queries.Length; i++)
        {
            queries[i] = cursor.ReadString("query");
        }

        if (cursor.Remaining != 0)
        {
            throw Invalid($"{cursor.Remaining} bytes follow the last query");
        }

        return new MetaContextRequest(name, queries);
    }

    /// <summary>Data of NBD_OPT_EXPORT_NAME: the whole payload is the name.</summary>
    public static string ParseExportName(ReadOnlySpan<byte> data) => DecodeString(data, "export name");

    private static string DecodeString(ReadOnlySpan<byte> bytes, string what)
    {
        if (bytes.Length > NbdWire.MaxStringLength)
        {
            throw Invalid($"{what} is {bytes.Length} bytes, longer than {NbdWire.MaxStringLength}");
        }

        if (bytes.Contains((byte)0))
        {
            throw Invalid($"{what} contains a NUL byte");
        }

        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Invalid($"{what} is not valid UTF-8");
        }
    }

    private static NbdOptionException Invalid(string message) => new(OptionReplyType.ErrInvalid, message);

    /// <summary>Reads big-endian fields from option data, naming what was missing.</summary>
    private ref struct SpanCursor(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly int Remaining => _rest.Length;

        public ushort ReadUInt16(string what) => BinaryPrimitives.ReadUInt16BigEndian(Take(2, what));

        public uint ReadUInt32(string what) => BinaryPrimitives.ReadUInt32BigEndian(Take(4, what));

        public string ReadString(string what)
        {
            uint length = ReadUInt32(what + " length");
            if (length > (uint)_rest.Length)
            {
                throw Invalid($"{what} length {length} exceeds the {_rest.Length} bytes left");
            }

            return DecodeString(Take((int)length, what), what);
        }

        private ReadOnlySpan<byte> Take(int count, string what)
        {
            if (_rest.Length < count)
            {
                throw Invalid($"option data ends before the {what}");
            }

            var taken = _rest[..count];
            _rest = _rest[count..];
            return taken;
        }
    }
}
