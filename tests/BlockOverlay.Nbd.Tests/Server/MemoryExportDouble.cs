using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A test export over a <see cref="MemoryExport"/>: every operation goes to it unless a test
/// double overrides it (to wait, to fail, to carry access rules).
/// </summary>
internal abstract class MemoryExportDouble(long size, string description) : IExport
{
    private readonly MemoryExport _inner = new(size);

    public long Size => _inner.Size;

    public ExportCapabilities Capabilities => _inner.Capabilities;

    public string Description => description;

    public virtual ValueTask ReadAsync(long offset, Memory<byte> buffer) => _inner.ReadAsync(offset, buffer);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags) => _inner.WriteAsync(offset, data, flags);

    public ValueTask FlushAsync() => _inner.FlushAsync();

    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) => _inner.TrimAsync(offset, length, flags);

    public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags) => _inner.ZeroAsync(offset, length, flags);

    public ValueTask CacheAsync(long offset, long length) => _inner.CacheAsync(offset, length);

    public virtual ValueTask ClientDetachedAsync() => _inner.ClientDetachedAsync();

    public ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents) =>
        _inner.GetAllocationAsync(offset, length, maxExtents, extents);

    public virtual ValueTask DisposeAsync() => _inner.DisposeAsync();
}
