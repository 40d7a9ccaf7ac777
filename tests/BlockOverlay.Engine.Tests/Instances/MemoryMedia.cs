using BlockOverlay.Io;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>Memory: a kill keeps every completed write (the store's writes are all durable).</summary>
internal sealed class MemoryMedia(long size) : IStoreMedia
{
    private MemoryDevice _device = new(size);

    public IBlockDevice Device => _device;

    public IBlockDevice Kill() => _device = _device.Clone();

    public ValueTask DisposeAsync() => _device.DisposeAsync();
}
