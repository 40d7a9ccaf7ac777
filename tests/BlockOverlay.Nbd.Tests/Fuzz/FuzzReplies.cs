using static BlockOverlay.Nbd.Tests.Fuzz.FuzzWire;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>
/// Reads one request's reply, simple or structured, and checks its frame: magic, cookie,
/// chunk types and offsets. Returns the error (0 for success) and, for a successful READ,
/// the bytes it carried, holes as zeros.
/// </summary>
internal static class FuzzReplies
{
    private const uint SimpleMagic = 0x67446698, StructuredMagic = 0x668e33ef;
    private const ushort Done = 1;
    private const ushort None = 0, OffsetData = 1, OffsetHole = 2, BlockStatus = 5, Error = 0x8001, ErrorOffset = 0x8002;

    public static async Task<(uint Error, byte[]? Data)> ReadSimpleAsync(FuzzWire wire, ulong cookie, uint readLength)
    {
        var header = await wire.ReadAsync(16, "a simple reply");
        if (U32(header, 0) != SimpleMagic || U64(header, 8) != cookie)
        {
            throw new WrongReplyException($"malformed simple reply {Convert.ToHexString(header)} for cookie {cookie:x}");
        }

        uint error = U32(header, 4);
        return error != 0 || readLength == 0 ? (error, null) : (0, await wire.ReadAsync((int)readLength, "READ data"));
    }

    public static async Task<(uint Error, byte[]? Data)> ReadStructuredAsync(FuzzWire wire, ulong cookie, uint readLength, ulong offset)
    {
        var data = readLength == 0 ? null : new byte[readLength];
        uint error = 0;
        var magic = await wire.ReadAsync(4, "a reply");
        if (U32(magic, 0) == SimpleMagic)
        {
            // Structured replies are a must for READ only; other commands may get a simple reply.
            if (readLength != 0)
            {
                throw new WrongReplyException("a simple reply to READ after structured replies were negotiated");
            }

            var rest = await wire.ReadAsync(12, "a simple reply");
            if (U64(rest, 4) != cookie)
            {
                throw new WrongReplyException($"simple reply with cookie {U64(rest, 4):x} for cookie {cookie:x}");
            }

            return (U32(rest, 0), null);
        }

        while (true)
        {
            var header = Concat(magic, await wire.ReadAsync(16, "a structured reply chunk"));
            ushort flags = U16(header, 4), type = U16(header, 6);
            uint length = U32(header, 16);
            if (U32(header, 0) != StructuredMagic || U64(header, 8) != cookie || length > readLength + (1u << 20))
            {
                throw new WrongReplyException($"malformed structured reply chunk {Convert.ToHexString(header)} for cookie {cookie:x}");
            }

            var payload = length == 0 ? [] : await wire.ReadAsync((int)length, "a chunk's payload");
            switch (type)
            {
                case None when length == 0:
                    break;
                case OffsetData or OffsetHole when data is not null && length >= (type == OffsetData ? 9u : 12u):
                    ulong at = U64(payload, 0) - offset;
                    ulong span = type == OffsetData ? length - 8 : U32(payload, 8);
                    if (U64(payload, 0) < offset || at + span > readLength)
                    {
                        throw new WrongReplyException($"READ chunk at {U64(payload, 0)}+{span} outside the request {offset}+{readLength}");
                    }

                    if (type == OffsetData)
                    {
                        payload.AsSpan(8).CopyTo(data.AsSpan((int)at));
                    }
                    else
                    {
                        data.AsSpan((int)at, (int)span).Clear();
                    }

                    break;
                case BlockStatus when data is null && length >= 12:
                    break;
                case Error or ErrorOffset when length >= 6:
                    error = U32(payload, 0);
                    if (error == 0)
                    {
                        throw new WrongReplyException("an error chunk with error 0");
                    }

                    break;
                default:
                    throw new WrongReplyException($"unexpected chunk type 0x{type:x} of {length} bytes");
            }

            if ((flags & Done) != 0)
            {
                return (error, error == 0 ? data : null);
            }

            magic = await wire.ReadAsync(4, "the next structured reply chunk");
        }
    }
}
