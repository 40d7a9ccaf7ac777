using System.Buffers;
using System.IO.Pipelines;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>A parser in the shape of <see cref="NbdParser"/>'s <c>TryRead…</c> functions.</summary>
internal delegate bool MessageParser<T>(ref ReadOnlySequence<byte> buffer, out T message);

/// <summary>
/// Reads whole messages from a <see cref="PipeReader"/>: waits until a parser accepts the
/// bytes, or copies/skips a payload of known length as it arrives, so nothing is
/// buffered beyond what the caller asked for.
/// </summary>
internal sealed class MessageReader(PipeReader reader)
{
    /// <summary>
    /// The next message, or <c>default</c> with <paramref name="endOfStream"/> when the peer
    /// closed cleanly between messages. A stream that ends inside a message is a protocol error.
    /// </summary>
    public async ValueTask<(T Message, bool EndOfStream)> ReadAsync<T>(MessageParser<T> parse, CancellationToken cancel)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancel);
            var buffer = result.Buffer;
            bool parsed;
            T message;
            try
            {
                parsed = parse(ref buffer, out message);
            }
            catch
            {
                reader.AdvanceTo(buffer.Start);
                throw;
            }

            if (parsed)
            {
                reader.AdvanceTo(buffer.Start);
                return (message, false);
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return buffer.IsEmpty
                    ? (default!, true)
                    : throw new NbdProtocolException($"connection closed inside a message ({buffer.Length} bytes of it received)");
            }
        }
    }

    /// <summary>Copies exactly <paramref name="destination"/>.Length bytes from the stream.</summary>
    public async ValueTask ReadExactlyAsync(Memory<byte> destination, CancellationToken cancel)
    {
        while (!destination.IsEmpty)
        {
            var result = await reader.ReadAsync(cancel);
            var buffer = result.Buffer;
            int count = (int)Math.Min(buffer.Length, destination.Length);
            buffer.Slice(0, count).CopyTo(destination.Span);
            destination = destination[count..];
            reader.AdvanceTo(buffer.GetPosition(count));
            if (!destination.IsEmpty && (result.IsCompleted || result.IsCanceled))
            {
                throw new NbdProtocolException($"connection closed with {destination.Length} bytes of a payload still to come");
            }
        }
    }

    /// <summary>Discards <paramref name="count"/> bytes as they arrive, holding none of them.</summary>
    public async ValueTask SkipAsync(long count, CancellationToken cancel)
    {
        while (count > 0)
        {
            var result = await reader.ReadAsync(cancel);
            long skipped = Math.Min(result.Buffer.Length, count);
            reader.AdvanceTo(result.Buffer.GetPosition(skipped));
            count -= skipped;
            if (count > 0 && (result.IsCompleted || result.IsCanceled))
            {
                throw new NbdProtocolException($"connection closed with {count} bytes of a payload still to come");
            }
        }
    }
}
