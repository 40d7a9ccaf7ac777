using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A memory export whose reads at one offset wait until the test opens the gate: a
/// stand-in for a slow device, to show one slow request does not hold up the others.
/// </summary>
internal sealed class GatedExport(long size, long gatedOffset) : IExport
{
    private readonly MemoryExport _inner = new(size);
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long Size => _inner.Size;

    public ExportCapabilities Capabilities => _inner.Capabilities;

    public string Description => "gated";

    public void Open() => _gate.TrySetResult();

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        if (offset == gatedOffset)
        {
            await _gate.Task;
        }

        await _inner.ReadAsync(offset, buffer);
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags) => _inner.WriteAsync(offset, data, flags);

    public ValueTask FlushAsync() => _inner.FlushAsync();

    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) => _inner.TrimAsync(offset, length, flags);

    public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags) => _inner.ZeroAsync(offset, length, flags);

    public ValueTask CacheAsync(long offset, long length) => _inner.CacheAsync(offset, length);

    public ValueTask ClientDetachedAsync() => _inner.ClientDetachedAsync();

    public ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents) =>
        _inner.GetAllocationAsync(offset, length, maxExtents, extents);

    public ValueTask DisposeAsync()
    {
        Open();
        return _inner.DisposeAsync();
    }
}
