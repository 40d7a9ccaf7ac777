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
    /// <summary>The server's largest payload: a READ longer than this must be refused, so nothing is kept for its data.</summary>
    public const uint MaxPayload = 32 * 1024 * 1024;

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
        if (error == 0 && readLength > MaxPayload)
        {
            throw new WrongReplyException($"a READ of {readLength} bytes, over the largest payload, succeeded");
        }

        return error != 0 || readLength == 0 ? (error, null) : (0, await wire.ReadAsync((int)readLength, "READ data"));
    }

    public static async Task<(uint Error, byte[]? Data)> ReadStructuredAsync(FuzzWire wire, ulong cookie, uint readLength, ulong offset)
    {
        var reply = new PendingReply(readLength, offset);
        var magic = await wire.ReadAsync(4, "a reply");
        if (U32(magic, 0) == SimpleMagic)
        {
            var rest = await wire.ReadAsync(12, "a simple reply");
            if (U64(rest, 4) != cookie)
            {
                throw new WrongReplyException($"simple reply with cookie {U64(rest, 4):x} for cookie {cookie:x}");
            }

            reply.TakeSimple(U32(rest, 0), structured: true);
            return (reply.Error, null);
        }

        while (true)
        {
            var header = Concat(magic, await wire.ReadAsync(16, "a structured reply chunk"));
            if (U64(header, 8) != cookie)
            {
                throw new WrongReplyException($"malformed structured reply chunk {Convert.ToHexString(header)} for cookie {cookie:x}");
            }

            await ReadChunkAsync(wire, header, reply);
            if (reply.Done)
            {
                return (reply.Error, reply.Error == 0 ? reply.Data : null);
            }

            magic = await wire.ReadAsync(4, "the next structured reply chunk");
        }
    }

    /// <summary>
    /// The replies to requests sent together before any was read, by cookie: they may come in any
    /// order, and structured chunks of different requests may interleave. Returns when all are done.
    /// </summary>
    public static async Task ReadPipelinedAsync(FuzzWire wire, bool structured, IReadOnlyDictionary<ulong, PendingReply> pending)
    {
        int left = pending.Count;
        while (left > 0)
        {
            var magic = await wire.ReadAsync(4, $"a reply ({left} of {pending.Count} pipelined requests unanswered)");
            bool simple = U32(magic, 0) == SimpleMagic;
            var header = Concat(magic, await wire.ReadAsync(simple ? 12 : 16, "a pipelined reply"));
            ulong cookie = U64(header, 8);
            if (!pending.TryGetValue(cookie, out var reply) || reply.Done)
            {
                throw new WrongReplyException($"reply {Convert.ToHexString(header)} for cookie {cookie:x}, which has no request waiting");
            }

            if (simple)
            {
                reply.TakeSimple(U32(header, 4), structured);
                if (reply.Error == 0 && reply.ReadLength != 0)
                {
                    reply.Data = await wire.ReadAsync((int)reply.ReadLength, "READ data");
                }
            }
            else
            {
                await ReadChunkAsync(wire, header, reply);
            }

            left -= reply.Done ? 1 : 0;
        }
    }

    /// <summary>One structured chunk (its 20-byte header read) into its request's reply.</summary>
    private static async Task ReadChunkAsync(FuzzWire wire, byte[] header, PendingReply reply)
    {
        ushort flags = U16(header, 4), type = U16(header, 6);
        uint length = U32(header, 16);
        if (U32(header, 0) != StructuredMagic || length > Math.Min(reply.ReadLength, MaxPayload) + (1u << 20))
        {
            throw new WrongReplyException($"malformed structured reply chunk {Convert.ToHexString(header)}");
        }

        var payload = length == 0 ? [] : await wire.ReadAsync((int)length, "a chunk's payload");
        var data = reply.Data;
        switch (type)
        {
            case None when length == 0:
                break;
            case OffsetData or OffsetHole when data is not null && length >= (type == OffsetData ? 9u : 12u):
                ulong at = U64(payload, 0) - reply.Offset;
                ulong span = type == OffsetData ? length - 8 : U32(payload, 8);
                if (U64(payload, 0) < reply.Offset || at + span > reply.ReadLength)
                {
                    throw new WrongReplyException($"READ chunk at {U64(payload, 0)}+{span} outside the request {reply.Offset}+{reply.ReadLength}");
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
            case BlockStatus when reply.ReadLength == 0 && length >= 12:
                break;
            case Error or ErrorOffset when length >= 6:
                reply.Error = U32(payload, 0);
                if (reply.Error == 0)
                {
                    throw new WrongReplyException("an error chunk with error 0");
                }

                break;
            default:
                throw new WrongReplyException($"unexpected chunk type 0x{type:x} of {length} bytes");
        }

        if ((flags & Done) != 0)
        {
            reply.Done = true;
            if (reply.Error != 0)
            {
                reply.Data = null;
            }
        }
    }
}

/// <summary>A request's reply as it arrives: the READ's bytes (holes as zeros), its error, whether it is whole.</summary>
/// <remarks>
/// A READ longer than the largest payload gets no buffer: the server must refuse it, so a data
/// chunk for it is a wrong reply. (A buffer of its length, up to 2 GiB zeroed per request, once
/// stalled the whole test process, server and steady client too, for seconds of GC and page faults.)
/// </remarks>
internal sealed class PendingReply(uint readLength, ulong offset)
{
    public uint ReadLength { get; } = readLength;

    public ulong Offset { get; } = offset;

    public byte[]? Data { get; set; } = readLength is 0 or > FuzzReplies.MaxPayload ? null : new byte[readLength];

    public uint Error { get; set; }

    public bool Done { get; set; }

    /// <summary>A simple reply: the whole answer. After structured replies were negotiated, READ may not get one.</summary>
    public void TakeSimple(uint error, bool structured)
    {
        if (structured && ReadLength != 0)
        {
            throw new WrongReplyException("a simple reply to READ after structured replies were negotiated");
        }

        Error = error;
        Data = null;
        Done = true;
    }
}
