using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>A 4 KiB memory export with access rules the test sets, as an instance with stored rules is.</summary>
internal sealed class RestrictedExport(ExportAccess access) : IExport, IRestrictedExport
{
    private readonly MemoryExport _inner = new(4096);

    public ExportAccess Access { get; set; } = access;

    public long Size => _inner.Size;

    public ExportCapabilities Capabilities => _inner.Capabilities;

    public string Description => "restricted";

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => _inner.ReadAsync(offset, buffer);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags) => _inner.WriteAsync(offset, data, flags);

    public ValueTask FlushAsync() => _inner.FlushAsync();

    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) => _inner.TrimAsync(offset, length, flags);

    public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags) => _inner.ZeroAsync(offset, length, flags);

    public ValueTask CacheAsync(long offset, long length) => _inner.CacheAsync(offset, length);

    public ValueTask ClientDetachedAsync() => _inner.ClientDetachedAsync();

    public ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents) =>
        _inner.GetAllocationAsync(offset, length, maxExtents, extents);

    public ValueTask DisposeAsync() => _inner.DisposeAsync();
}
