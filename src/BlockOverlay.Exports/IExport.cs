namespace BlockOverlay.Exports;

/// <summary>
/// A virtual disk as the protocol layer sees it: a size, what it can do, and the
/// operations. The NBD server speaks to nothing else, so every backend (memory, file and
/// the copy-on-write instances) plugs in here.
/// </summary>
/// <remarks>
/// Contract, shared by every implementation:
/// <list type="bullet">
/// <item>Ranges are already validated by the caller: <c>offset + length &lt;= Size</c>,
/// length &gt; 0, and only capabilities the export advertised are used.</item>
/// <item>Operations may run concurrently, from many connections, on overlapping ranges.
/// Concurrent writes to one range end with one of the writes' bytes, never a mix within
/// one 512-byte sector of a single write.</item>
/// <item>Nothing may block a thread on I/O: work that waits returns an incomplete task,
/// so one slow request never holds up the connection's others.</item>
/// <item>Buffers belong to the caller and are only valid until the returned task
/// completes; an export copies what it keeps.</item>
/// <item>A completed <see cref="FlushAsync"/> makes durable every write that completed
/// before the flush was called, on every connection when the export advertises
/// <see cref="ExportCapabilities.MultiConn"/>. <see cref="WriteFlags.Fua"/> makes that one
/// write durable before its task completes.</item>
/// <item>Failures are <see cref="ExportException"/> (a reason the client is told) or
/// <see cref="IOException"/> (reported as an I/O error); anything else is a bug
/// (<see cref="ExportFailures.Classify"/>).</item>
/// </list>
/// </remarks>
public interface IExport : IAsyncDisposable
{
    /// <summary>Size of the disk in bytes.</summary>
    long Size { get; }

    /// <summary>What this export supports; advertised truthfully to clients.</summary>
    ExportCapabilities Capabilities { get; }

    /// <summary>Human-readable text for export listings; may be empty.</summary>
    string Description { get; }

    /// <summary>Fills <paramref name="buffer"/> with the bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags);

    /// <summary>Makes every completed write durable (see the contract above).</summary>
    ValueTask FlushAsync();

    /// <summary>Drops the range: it may afterwards read as anything (in practice zeros).</summary>
    ValueTask TrimAsync(long offset, long length, WriteFlags flags);

    /// <summary>
    /// Makes the range read as zeros. Without <see cref="ZeroFlags.NoHole"/> the space may
    /// be released. With <see cref="ZeroFlags.FastZero"/> an export that cannot zero faster
    /// than writing zeros throws <see cref="ExportError.NotSupported"/> without changing
    /// anything.
    /// </summary>
    ValueTask ZeroAsync(long offset, long length, ZeroFlags flags);

    /// <summary>A hint: the client will soon read this range.</summary>
    ValueTask CacheAsync(long offset, long length);

    /// <summary>
    /// A connection that used this export has ended. An export that holds acknowledged data
    /// in memory writes it back now (DESIGN.md, invariant 9: a client that leaves orphans nothing).
    /// </summary>
    ValueTask ClientDetachedAsync();

    /// <summary>
    /// Describes the allocation of the range starting at <paramref name="offset"/>, in
    /// consecutive extents appended to <paramref name="extents"/>: at least one, together
    /// no longer than <paramref name="length"/> (they may cover less), at most
    /// <paramref name="maxExtents"/> of them.
    /// </summary>
    ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents);
}

/// <summary>Features an export supports. The server advertises exactly these.</summary>
[Flags]
public enum ExportCapabilities
{
    None = 0,
    /// <summary>Writes, trims and zeroing are refused.</summary>
    ReadOnly = 1 << 0,
    /// <summary>Flush and FUA make data durable.</summary>
    Flush = 1 << 1,
    /// <summary>Trim is honoured (it may be a no-op).</summary>
    Trim = 1 << 2,
    /// <summary>Zeroing a range is cheaper than writing zeros (at least sometimes).</summary>
    FastZero = 1 << 3,
    /// <summary>Caching hints are honoured (they may be a no-op).</summary>
    Cache = 1 << 4,
    /// <summary>A flush covers writes from every connection to this export.</summary>
    MultiConn = 1 << 5,
}

/// <summary>Flags of write-type operations.</summary>
[Flags]
public enum WriteFlags
{
    None = 0,
    /// <summary>Durable before completion (forced unit access).</summary>
    Fua = 1 << 0,
}

/// <summary>Flags of <see cref="IExport.ZeroAsync"/>.</summary>
[Flags]
public enum ZeroFlags
{
    None = 0,
    /// <summary>Durable before completion.</summary>
    Fua = 1 << 0,
    /// <summary>Keep the space allocated: the range must not become a hole.</summary>
    NoHole = 1 << 1,
    /// <summary>Fail with <see cref="ExportError.NotSupported"/> rather than write zeros slowly.</summary>
    FastZero = 1 << 2,
}

/// <summary>A run of bytes with one allocation state.</summary>
/// <param name="Length">Length in bytes, greater than zero.</param>
/// <param name="State">What is known about the run.</param>
public readonly record struct Extent(long Length, ExtentState State);

/// <summary>Allocation state of an extent (the <c>base:allocation</c> meaning).</summary>
[Flags]
public enum ExtentState
{
    /// <summary>Allocated data (or nothing known).</summary>
    Data = 0,
    /// <summary>Not allocated: writing here may need space.</summary>
    Hole = 1 << 0,
    /// <summary>Reads as zeros.</summary>
    Zero = 1 << 1,
}
