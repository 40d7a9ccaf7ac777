using System.Buffers;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// A reply waiting to be written. Replies are built by whichever request completes and
/// written by the connection's single writer, in completion order.
/// </summary>
internal abstract class OutgoingReply(ulong cookie)
{
    public ulong Cookie { get; } = cookie;

    public abstract void WriteTo(IBufferWriter<byte> writer);

    /// <summary>Gives back pooled memory; called once, after writing or when the connection is gone.</summary>
    public virtual void Release()
    {
    }
}

/// <summary>
/// Success or failure without data. Errors go in a structured ERROR chunk (with the reason
/// as its message) when structured replies were negotiated, else in a simple reply.
/// </summary>
internal sealed class StatusReply(ulong cookie, NbdError error, string message, bool structured) : OutgoingReply(cookie)
{
    public static StatusReply Success(ulong cookie) => new(cookie, NbdError.None, string.Empty, structured: false);

    public override void WriteTo(IBufferWriter<byte> writer)
    {
        if (error != NbdError.None && structured)
        {
            NbdEncoder.WriteErrorChunk(writer, Cookie, error, message);
        }
        else
        {
            NbdEncoder.WriteSimpleReply(writer, Cookie, error);
        }
    }
}

/// <summary>
/// The data of a successful READ. With structured replies, runs of zeros become
/// OFFSET_HOLE chunks, so sparse reads cost headers instead of bytes on the wire.
/// </summary>
internal sealed class ReadReply(RequestBuffers buffers, ulong cookie, ulong offset, byte[] buffer, int length, bool structured, bool dontFragment)
    : OutgoingReply(cookie)
{
    /// <summary>Zero detection works on aligned blocks of this size (the preferred block size).</summary>
    internal const int HoleGranularity = 4096;

    public override void WriteTo(IBufferWriter<byte> writer)
    {
        var data = buffer.AsSpan(0, length);
        if (!structured)
        {
            NbdEncoder.WriteSimpleReply(writer, Cookie, NbdError.None);
            NbdEncoder.WritePayload(writer, data);
            return;
        }

        if (dontFragment)
        {
            // "the server MUST send at most one content chunk": a hole only if all of it is zero.
            if (data.ContainsAnyExcept((byte)0))
            {
                NbdEncoder.WriteDataChunk(writer, Cookie, ReplyFlags.Done, offset, data);
            }
            else
            {
                NbdEncoder.WriteHoleChunk(writer, Cookie, ReplyFlags.Done, offset, (uint)length);
            }

            return;
        }

        int start = 0;
        while (start < length)
        {
            bool zero = IsZeroBlock(data, start, out int end);
            // Extend the run while the next blocks have the same state.
            while (end < length && IsZeroBlock(data, end, out int next) == zero)
            {
                end = next;
            }

            var flags = end == length ? ReplyFlags.Done : ReplyFlags.None;
            if (zero)
            {
                NbdEncoder.WriteHoleChunk(writer, Cookie, flags, offset + (ulong)start, (uint)(end - start));
            }
            else
            {
                NbdEncoder.WriteDataChunk(writer, Cookie, flags, offset + (ulong)start, data[start..end]);
            }

            start = end;
        }
    }

    public override void Release() => buffers.Return(buffer);

    /// <summary>Whether the block starting at <paramref name="start"/> (up to the next aligned boundary) is all zeros.</summary>
    private bool IsZeroBlock(ReadOnlySpan<byte> data, int start, out int end)
    {
        ulong absolute = offset + (ulong)start;
        int toBoundary = HoleGranularity - (int)(absolute % HoleGranularity);
        end = Math.Min(data.Length, start + toBoundary);
        return !data[start..end].ContainsAnyExcept((byte)0);
    }
}

/// <summary>A BLOCK_STATUS reply: one chunk per selected context, the last marked done.</summary>
internal sealed class BlockStatusReply(ulong cookie, IReadOnlyList<(uint ContextId, BlockStatusDescriptor[] Descriptors)> chunks)
    : OutgoingReply(cookie)
{
    public override void WriteTo(IBufferWriter<byte> writer)
    {
        for (int i = 0; i < chunks.Count; i++)
        {
            var flags = i == chunks.Count - 1 ? ReplyFlags.Done : ReplyFlags.None;
            NbdEncoder.WriteBlockStatusChunk(writer, Cookie, flags, chunks[i].ContextId, chunks[i].Descriptors);
        }
    }
}
