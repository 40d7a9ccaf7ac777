using System.Buffers;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// A reply waiting to be written. Replies are built by whichever request completes and
/// written by the connection's single writer, in completion order.
/// </summary>
internal abstract class OutgoingReply(ulong cookie)
{
    public ulong Cookie { get; protected set; } = cookie;

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

/// <summary>A success without data (WRITE, FLUSH, TRIM, ...): a simple reply, reused by its connection once written.</summary>
internal sealed class SuccessReply(ReplyPool pool) : OutgoingReply(0)
{
    public SuccessReply For(ulong cookie)
    {
        Cookie = cookie;
        return this;
    }

    public override void WriteTo(IBufferWriter<byte> writer) => NbdEncoder.WriteSimpleReply(writer, Cookie, NbdError.None);

    public override void Release() => pool.Return(this);
}

/// <summary>
/// The data of a successful READ. With structured replies, runs of zeros become
/// OFFSET_HOLE chunks, so sparse reads cost headers instead of bytes on the wire.
/// A connection reuses its read replies (<see cref="ReplyPool"/>) once written.
/// </summary>
internal sealed class ReadReply : OutgoingReply
{
    private readonly RequestBuffers _buffers;
    private readonly ReplyPool? _pool;
    private ulong _offset;
    private byte[] _buffer = [];
    private int _length;
    private bool _structured;
    private bool _dontFragment;

    public ReadReply(RequestBuffers buffers, ulong cookie, ulong offset, byte[] buffer, int length, bool structured, bool dontFragment)
        : this(buffers, pool: null)
    {
        For(cookie, offset, buffer, length, structured, dontFragment);
    }

    internal ReadReply(RequestBuffers buffers, ReplyPool? pool)
        : base(0)
    {
        _buffers = buffers;
        _pool = pool;
    }

    /// <summary>Zero detection works on aligned blocks of this size (the preferred block size).</summary>
    internal const int HoleGranularity = 4096;

    /// <summary>Sets the reply to <paramref name="cookie"/>'s data, <paramref name="buffer"/> (given back on release).</summary>
    public ReadReply For(ulong cookie, ulong offset, byte[] buffer, int length, bool structured, bool dontFragment)
    {
        Cookie = cookie;
        (_offset, _buffer, _length, _structured, _dontFragment) = (offset, buffer, length, structured, dontFragment);
        return this;
    }

    public override void WriteTo(IBufferWriter<byte> writer)
    {
        var data = _buffer.AsSpan(0, _length);
        ulong offset = _offset;
        int length = _length;
        if (!_structured)
        {
            NbdEncoder.WriteSimpleReply(writer, Cookie, NbdError.None);
            NbdEncoder.WritePayload(writer, data);
            return;
        }

        if (_dontFragment)
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

    public override void Release()
    {
        _buffers.Return(_buffer);
        _buffer = [];
        _pool?.Return(this);
    }

    /// <summary>Whether the block starting at <paramref name="start"/> (up to the next aligned boundary) is all zeros.</summary>
    private bool IsZeroBlock(ReadOnlySpan<byte> data, int start, out int end)
    {
        ulong absolute = _offset + (ulong)start;
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

/// <summary>
/// The replies one connection reuses, a success without data and a READ's data: what every
/// steady workload sends, so a request allocates no reply. A reply comes back on release, after
/// it was written (or dropped); replies in flight at once are each their own object.
/// </summary>
internal sealed class ReplyPool(RequestBuffers buffers)
{
    private readonly Lock _lock = new();
    private readonly Stack<SuccessReply> _successes = new();
    private readonly Stack<ReadReply> _reads = new();

    public SuccessReply Success(ulong cookie)
    {
        lock (_lock)
        {
            return (_successes.TryPop(out var reply) ? reply : new SuccessReply(this)).For(cookie);
        }
    }

    /// <summary>The data of a READ in <paramref name="buffer"/>, from <see cref="RequestBuffers"/> (given back when the reply is released).</summary>
    public ReadReply Read(ulong cookie, ulong offset, byte[] buffer, int length, bool structured, bool dontFragment)
    {
        lock (_lock)
        {
            return (_reads.TryPop(out var reply) ? reply : new ReadReply(buffers, this)).For(cookie, offset, buffer, length, structured, dontFragment);
        }
    }

    public void Return(SuccessReply reply)
    {
        lock (_lock)
        {
            _successes.Push(reply);
        }
    }

    public void Return(ReadReply reply)
    {
        lock (_lock)
        {
            _reads.Push(reply);
        }
    }
}
