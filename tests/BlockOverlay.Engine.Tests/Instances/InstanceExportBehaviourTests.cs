using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Engine.Tests.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>The behaviour every export shows, over an instance without a base in a memory-backed store.</summary>
[TestFixture]
public sealed class InstanceExportBehaviourTests : ExportBehaviourTests
{
    private UpperStore? _store;

    protected override async ValueTask<IExport> CreateAsync(long size)
    {
        var device = new MemoryDevice((size * 3) + (8L << 20));
        await UpperStore.CreateAsync(device);
        _store = await UpperStore.OpenAsync(device);
        var instance = await _store.CreateInstanceAsync("behaviour", size, null);
        return new InstanceExport(_store, instance, null);
    }

    protected override void CleanUp()
    {
        _store?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _store = null;
    }
}
