using System.Buffers;

namespace BlockOverlay.Exports;

/// <summary>
/// An export that can take a write's bytes straight out of the connection's receive buffers,
/// when it can do so without waiting: the payload is then copied once, into the export's own
/// memory, instead of first into a buffer of the protocol layer's and again from there.
/// </summary>
/// <remarks>
/// The protocol layer offers a WRITE here when its payload is already whole in the receive
/// buffers; if the export declines, it copies the payload out and calls
/// <see cref="IExport.WriteAsync"/> as for any export. Both ways obey <see cref="IExport"/>'s
/// contract, and a client cannot tell which one a write took.
/// </remarks>
public interface IDirectWriteExport : IExport
{
    /// <summary>
    /// Takes <paramref name="data"/> (a validated range, as <see cref="IExport.WriteAsync"/>) if
    /// that needs no wait: then every byte of it has been copied before this returns, so the
    /// caller may reuse the buffers at once, and <paramref name="completion"/> ends the write
    /// (with <see cref="WriteFlags.Fua"/>, when it is durable); a failure of the write, one
    /// found at once included, is reported through <paramref name="completion"/>. Returns false,
    /// having changed nothing, when the write would have to wait (or cannot be taken this way).
    /// </summary>
    bool TryWriteNow(long offset, in ReadOnlySequence<byte> data, WriteFlags flags, out ValueTask completion);
}
