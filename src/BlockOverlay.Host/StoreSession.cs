using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary>A store opened from its address (<see cref="StoreDevices"/>): its device and the store on it, closed together (cleanly).</summary>
internal sealed class StoreSession : IAsyncDisposable
{
    private readonly IBlockDevice _device;

    private StoreSession(IBlockDevice device, UpperStore store)
    {
        _device = device;
        Store = store;
    }

    public UpperStore Store { get; }

    /// <summary>Completes when another server took the store over (RBD): nothing written from here on lands.</summary>
    public Task Fenced => StoreDevices.Fenced(_device);

    /// <summary>
    /// Opens and recovers the store; <paramref name="takeover"/> (RBD) first fences off a current
    /// owner. <paramref name="waiting"/> is told if the store's lock must be waited for.
    /// </summary>
    public static async Task<StoreSession> OpenAsync(string path, bool takeover = false, Action? waiting = null)
    {
        var device = await StoreDevices.OpenAsync(path, takeover, waiting: waiting);
        try
        {
            return new StoreSession(device, await UpperStore.OpenAsync(device));
        }
        catch
        {
            await device.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Store.DisposeAsync();
        }
        finally
        {
            await _device.DisposeAsync();
        }
    }
}
