using BlockOverlay.Engine.Cache;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// An instance's whole view (base + upper + what is still dirty, when it is served), read from
/// start to end: what committing an instance to an image copies.
/// </summary>
/// <remarks>
/// A served instance is read through its export (its dirty data included); one nobody serves
/// through an export of its own over a flush-only cache, opened here and closed with the view.
/// </remarks>
public sealed class InstanceView : IAsyncDisposable
{
    private const int Chunk = 1 << 20;
    private readonly InstanceExport _export;
    private readonly WriteBackCache? _ownCache;

    private InstanceView(InstanceExport export, WriteBackCache? ownCache) => (_export, _ownCache) = (export, ownCache);

    /// <summary>The view of a served instance, through its export (which stays open after this).</summary>
    public static InstanceView OfServed(InstanceExport export) => new(export ?? throw new ArgumentNullException(nameof(export)), null);

    /// <summary>The view of an instance nobody serves (its base opened through <paramref name="bases"/>, as in <see cref="InstanceExport.OpenAsync"/>).</summary>
    public static async Task<InstanceView> OpenAsync(UpperStore store, StoreInstance instance, BaseImages? bases = null)
    {
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        try
        {
            return new InstanceView(await InstanceExport.OpenAsync(cache, instance, bases), cache);
        }
        catch
        {
            await cache.DisposeAsync();
            throw;
        }
    }

    public long Size => _export.Size;

    /// <summary>
    /// Copies the whole view into <paramref name="destination"/>, sized to the view first: chunks
    /// of zeros are skipped, so a file stays sparse there. <paramref name="progress"/> hears
    /// (done, total) bytes; <paramref name="stop"/> ends the copy between chunks.
    /// </summary>
    public async Task CopyToAsync(Stream destination, Action<long, long>? progress = null, CancellationToken stop = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        long size = Size;
        destination.SetLength(size); // a hole: chunks of zeros are skipped and stay holes
        byte[] chunk = new byte[Chunk];
        for (long offset = 0; offset < size; offset += Chunk)
        {
            int n = (int)Math.Min(Chunk, size - offset);
            await _export.ReadAsync(offset, chunk.AsMemory(0, n));
            if (chunk.AsSpan(0, n).ContainsAnyExcept((byte)0))
            {
                destination.Position = offset;
                await destination.WriteAsync(chunk.AsMemory(0, n), stop);
            }

            progress?.Invoke(offset + n, size);
            stop.ThrowIfCancellationRequested();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_ownCache is not null)
        {
            await _export.DisposeAsync();
            await _ownCache.DisposeAsync();
        }
    }
}
