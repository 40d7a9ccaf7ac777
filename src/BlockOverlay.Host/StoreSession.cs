using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary>A store opened from a path: its device and the store on it, closed together (cleanly).</summary>
internal sealed class StoreSession : IAsyncDisposable
{
    private readonly FileDevice _device;

    private StoreSession(FileDevice device, UpperStore store)
    {
        _device = device;
        Store = store;
    }

    public UpperStore Store { get; }

    public static async Task<StoreSession> OpenAsync(string path)
    {
        if (Directory.Exists(path))
        {
            throw new IOException($"{path} is a directory; a store is a file (or a block device) made with: blockoverlay store create PATH --size SIZE");
        }

        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: no such store (make one with: blockoverlay store create {path} --size SIZE)");
        }

        var device = FileDevice.Open(path);
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
