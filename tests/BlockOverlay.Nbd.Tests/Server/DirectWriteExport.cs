using System.Buffers;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>What <see cref="DirectWriteExport"/> does with a write it is offered.</summary>
internal enum DirectWriteAnswer
{
    /// <summary>Copies it at once and completes.</summary>
    Take,
    /// <summary>Declines: the server must copy the payload and call WriteAsync.</summary>
    Decline,
    /// <summary>Takes it and fails it through the completion (NoSpace, as a quota would).</summary>
    Fail,
    /// <summary>Throws from TryWriteNow: a bug.</summary>
    Throw,
}

/// <summary>
/// A memory export that takes writes straight from the receive buffers as
/// <see cref="IDirectWriteExport"/> says, answering each offer as the test decides by its
/// offset, and remembering what it was offered.
/// </summary>
internal sealed class DirectWriteExport(long size, Func<long, DirectWriteAnswer> answer) : MemoryExportDouble(size, "direct"), IDirectWriteExport
{
    private int _taken;
    private int _declined;
    private int _multiSegment;

    public int Taken => Volatile.Read(ref _taken);

    public int Declined => Volatile.Read(ref _declined);

    /// <summary>Offers whose bytes came in more than one piece of the receive buffers.</summary>
    public int MultiSegment => Volatile.Read(ref _multiSegment);

    /// <summary>The flags of every offer, in order.</summary>
    public List<WriteFlags> Flags { get; } = [];

    public bool TryWriteNow(long offset, in ReadOnlySequence<byte> data, WriteFlags flags, out ValueTask completion)
    {
        lock (Flags)
        {
            Flags.Add(flags);
        }

        if (!data.IsSingleSegment)
        {
            Interlocked.Increment(ref _multiSegment);
        }

        switch (answer(offset))
        {
            case DirectWriteAnswer.Decline:
                Interlocked.Increment(ref _declined);
                completion = default;
                return false;
            case DirectWriteAnswer.Fail:
                completion = ValueTask.FromException(new ExportException(ExportError.NoSpace, "no room for this one"));
                return true;
            case DirectWriteAnswer.Throw:
                throw new InvalidOperationException("a bug in TryWriteNow");
            default:
                Interlocked.Increment(ref _taken);
                // Copied before returning, as the contract says: the buffers are the server's again after this.
                completion = WriteAsync(offset, data.ToArray(), flags);
                return true;
        }
    }
}
