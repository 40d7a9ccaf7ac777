namespace BlockOverlay.Exports;

/// <summary>
/// An export that paces its clients: before the protocol layer reads a data request's payload
/// and starts it, it waits for the export to admit the request. An export with limits (an
/// instance with an IOPS or byte rate) completes the wait later; the connection's reader
/// stops reading meanwhile, so the socket, not a failed request, pushes back on that client,
/// and the other exports' connections are not held.
/// </summary>
/// <remarks>
/// What is admitted: READ and WRITE as one request of their length in bytes, WRITE_ZEROES and
/// TRIM as one request of no bytes (no data crosses the wire). FLUSH, CACHE and BLOCK_STATUS
/// are not paced (a flush is only delayed by the requests read before it).
/// </remarks>
public interface IPacedExport : IExport
{
    /// <summary>
    /// Completes when one more request moving <paramref name="bytes"/> bytes may start. Cancelled
    /// by <paramref name="cancel"/> (the connection is ending); never fails otherwise.
    /// </summary>
    ValueTask AdmitAsync(long bytes, CancellationToken cancel);
}
