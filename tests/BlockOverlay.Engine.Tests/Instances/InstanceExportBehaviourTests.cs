using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Engine.Tests.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>The behaviour every export shows, over an instance without a base in a memory-backed store.</summary>
[TestFixture]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "CleanUp, run after every test, disposes them")]
public sealed class InstanceExportBehaviourTests : ExportBehaviourTests
{
    private UpperStore? _store;
    private WriteBackCache? _cache;

    protected override async ValueTask<IExport> CreateAsync(long size)
    {
        var device = new MemoryDevice((size * 3) + (8L << 20));
        await UpperStore.CreateAsync(device);
        _store = await UpperStore.OpenAsync(device);
        var instance = await _store.CreateInstanceAsync("behaviour", size, null);
        _cache = new WriteBackCache(_store, CacheOptions.FlushOnly);
        return new InstanceExport(_cache, instance, null);
    }

    protected override void CleanUp()
    {
        _cache?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _cache = null;
        _store?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _store = null;
    }
}
