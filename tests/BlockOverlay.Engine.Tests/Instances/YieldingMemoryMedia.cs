using BlockOverlay.Engine.Tests.Exports;
using BlockOverlay.Io;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>Memory behind a <see cref="YieldingDevice"/>: concurrent requests interleave inside the store's I/O.</summary>
internal sealed class YieldingMemoryMedia : IStoreMedia
{
    private MemoryDevice _memory;
    private YieldingDevice _device;

    public YieldingMemoryMedia(long size)
    {
        _memory = new MemoryDevice(size);
        _device = new YieldingDevice(_memory);
    }

    public IBlockDevice Device => _device;

    public IBlockDevice Kill()
    {
        _memory = _memory.Clone();
        return _device = new YieldingDevice(_memory);
    }

    public ValueTask DisposeAsync() => _device.DisposeAsync();
}
