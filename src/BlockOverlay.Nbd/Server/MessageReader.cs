using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>A parser in the shape of <see cref="NbdParser"/>'s <c>TryRead…</c> functions.</summary>
internal delegate bool MessageParser<T>(ref ReadOnlySequence<byte> buffer, out T message);

/// <summary>
/// Reads whole messages from a <see cref="PipeReader"/>: waits until a parser accepts the
/// bytes, or holds (until the caller consumes it) or skips a payload of known length as it arrives, so nothing is
/// buffered beyond what the caller asked for.
/// </summary>
internal sealed class MessageReader(PipeReader reader)
{
    /// <summary>
    /// The next message, or <c>default</c> with <paramref name="endOfStream"/> when the peer
    /// closed cleanly between messages. A stream that ends inside a message is a protocol error.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // it waits for every request: no box per wait
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

    /// <summary>
    /// Whether bytes already received wait past the last message read; asks the pipe what it
    /// holds and never reads the stream (<see cref="PipeReader.TryRead"/> does no I/O).
    /// </summary>
    public bool HoldsUnreadBytes()
    {
        if (!reader.TryRead(out var result))
        {
            return false;
        }

        reader.AdvanceTo(result.Buffer.Start);
        return !result.Buffer.IsEmpty;
    }

    /// <summary>Copies exactly <paramref name="destination"/>.Length bytes from the stream (option data: small, bounded).</summary>
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

    /// <summary>
    /// A payload of <paramref name="length"/> bytes, once it is whole, in the pipe's own segments
    /// (so what is held follows what was received, counted in <paramref name="counters"/> while
    /// it arrives). The caller copies it out and must then <see cref="Consume"/> it before reading
    /// anything else. If no byte arrives for <paramref name="stall"/>, or the payload is not whole
    /// within <paramref name="stall"/> + <paramref name="length"/> / <paramref name="minRate"/>
    /// (bytes per second), the payload is abandoned: a trickle holds its budget no longer than that.
    /// </summary>
    /// <exception cref="NbdProtocolException">The stream ended, or the payload stalled.</exception>
    public ValueTask<ReadOnlySequence<byte>> ReadPayloadAsync(int length, ServerCounters counters, TimeSpan stall, long minRate,
        CancellationToken cancel)
    {
        // Already whole in the pipe (a small WRITE usually arrives with its header): no deadline
        // to arm (a linked token source and its timer per payload).
        if (reader.TryRead(out var ready))
        {
            if (ready.Buffer.Length >= length)
            {
                return new ValueTask<ReadOnlySequence<byte>>(ready.Buffer.Slice(0, length));
            }

            reader.AdvanceTo(ready.Buffer.Start);
        }

        return ReadPayloadArrivingAsync(length, counters, stall, minRate, cancel);
    }

    /// <summary>Ends a <see cref="ReadPayloadAsync"/>: its bytes are read, and their memory goes back to the pipe.</summary>
    public void Consume(in ReadOnlySequence<byte> payload) => reader.AdvanceTo(payload.End);

    private async ValueTask<ReadOnlySequence<byte>> ReadPayloadArrivingAsync(int length, ServerCounters counters, TimeSpan stall,
        long minRate, CancellationToken cancel)
    {
        using var progress = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var deadline = DateTime.UtcNow + stall + TimeSpan.FromSeconds((double)length / minRate);
        long held = 0;
        try
        {
            while (true)
            {
                var left = deadline - DateTime.UtcNow;
                bool floorArmed = left < stall; // which limit the timer stands for: it may fire a hair early
                progress.CancelAfter(floorArmed ? (left > TimeSpan.Zero ? left : TimeSpan.Zero) : stall);
                ReadResult result;
                try
                {
                    result = await reader.ReadAsync(progress.Token);
                }
                catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
                {
                    counters.RecordStall();
                    throw new NbdProtocolException(!floorArmed
                        ? $"the payload stalled: no byte for {stall.TotalSeconds:0.###} s ({held} of {length} bytes received)"
                        : $"the payload stalled: {held} of {length} bytes received in {(stall + TimeSpan.FromSeconds((double)length / minRate)).TotalSeconds:0.###} s, slower than {minRate} bytes/s");
                }

                var buffer = result.Buffer;
                counters.AddRequestBufferBytes(Math.Min(buffer.Length, length) - held);
                held = Math.Min(buffer.Length, length);
                if (buffer.Length >= length)
                {
                    return buffer.Slice(0, length);
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted || result.IsCanceled)
                {
                    throw new NbdProtocolException($"connection closed with {length - buffer.Length} bytes of a payload still to come");
                }
            }
        }
        finally
        {
            counters.AddRequestBufferBytes(-held);
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
