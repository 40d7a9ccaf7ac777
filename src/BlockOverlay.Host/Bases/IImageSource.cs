namespace BlockOverlay.Host.Bases;

/// <summary>
/// An image being imported, read front to back: its size, which runs of it read as zeros
/// (so the copy can leave holes there instead of writing zeros), and its bytes.
/// </summary>
internal interface IImageSource : IAsyncDisposable
{
    /// <summary>The image as the user named it, for messages.</summary>
    string Name { get; }

    long Size { get; }

    /// <summary>
    /// The run starting at <paramref name="offset"/>: at least one byte and at most
    /// <paramref name="maxLength"/>, all of it reading as zeros or not known to.
    /// </summary>
    ValueTask<ImageRun> RunAtAsync(long offset, long maxLength);

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/> (inside the image).</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer);
}

/// <summary>A stretch of an image: <see cref="Zeros"/> when it is known to read as zeros.</summary>
internal readonly record struct ImageRun(long Length, bool Zeros);
