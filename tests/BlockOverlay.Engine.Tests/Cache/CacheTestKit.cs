using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Tests.Cache;

/// <summary>A device that keeps a copy of every write, so a test can see exactly what reached the store.</summary>
internal sealed class ContentLogDevice(IBlockDevice inner) : IBlockDevice
{
    private readonly List<(long Offset, byte[] Data)> _writes = [];

    public long Size => inner.Size;

    public IReadOnlyList<(long Offset, byte[] Data)> Writes
    {
        get
        {
            lock (_writes)
            {
                return [.. _writes];
            }
        }
    }

    public void Clear()
    {
        lock (_writes)
        {
            _writes.Clear();
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        lock (_writes)
        {
            _writes.Add((offset, data.ToArray()));
        }

        return inner.WriteAsync(offset, data, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>A device whose writes each take a while: write-back is slow, so limits are reached and held.</summary>
internal sealed class SlowWriteDevice(IBlockDevice inner, TimeSpan perWrite) : IBlockDevice
{
    public long Size => inner.Size;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        await Task.Delay(perWrite);
        await inner.WriteAsync(offset, data, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();
}

/// <summary>Helpers shared by the cache tests.</summary>
internal static class CacheTestKit
{
    public const int Block = UpperStore.BlockSize;
    public const int MiB = 1 << 20;

    /// <summary>A block whose bytes all say whose it is.</summary>
    public static byte[] Filled(int bytes, byte owner)
    {
        byte[] data = new byte[bytes];
        Array.Fill(data, owner);
        return data;
    }

    /// <summary>Writes [0, bytes) of an export with its owner's byte, 1 MiB per write, without flushing.</summary>
    public static async Task FillAsync(InstanceExport export, long bytes, byte owner)
    {
        byte[] chunk = Filled(MiB, owner);
        for (long offset = 0; offset < bytes; offset += MiB)
        {
            await export.WriteAsync(offset, chunk.AsMemory(0, (int)Math.Min(MiB, bytes - offset)), WriteFlags.None);
        }
    }

    /// <summary>Creates a store on the device and opens it.</summary>
    public static async Task<UpperStore> NewStoreAsync(MemoryDevice memory, IBlockDevice? over = null)
    {
        await UpperStore.CreateAsync(memory);
        return await UpperStore.OpenAsync(over ?? memory);
    }

    /// <summary>Creates instances over zeros and opens an export for each through the cache.</summary>
    public static async Task<InstanceExport[]> OpenAsync(WriteBackCache cache, long size, FlushMode mode, params string[] names)
    {
        var exports = new InstanceExport[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            exports[i] = new InstanceExport(cache, await cache.Store.CreateInstanceAsync(names[i], size, null, mode), null);
        }

        return exports;
    }

    /// <summary>The byte where the store's data region starts (below: superblocks and journal).</summary>
    public static long DataStart(UpperStore store) => store.Info.DeviceBytes - store.Info.DataBytes;
}
