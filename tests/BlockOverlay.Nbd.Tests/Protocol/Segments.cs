using System.Buffers;

namespace BlockOverlay.Nbd.Tests.Protocol;

/// <summary>Builds multi-segment sequences, the way bytes arrive from a socket.</summary>
internal static class Segments
{
    /// <summary>The bytes split into segments at the given cut points.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var bounds = cuts.Where(c => c > 0 && c < bytes.Length).Distinct().Order().Append(bytes.Length).ToList();
        var first = new Segment(bytes.AsMemory(0, bounds[0]), 0);
        var last = first;
        for (int i = 1; i < bounds.Count; i++)
        {
            last = last.Append(bytes.AsMemory(bounds[i - 1], bounds[i] - bounds[i - 1]));
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
