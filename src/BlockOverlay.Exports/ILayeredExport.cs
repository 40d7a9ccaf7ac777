namespace BlockOverlay.Exports;

/// <summary>
/// An export made of layers (an instance: its upper data over a base image), which can
/// say where each byte comes from. The protocol layer offers it as the
/// <c>blockoverlay:layer</c> meta context.
/// </summary>
public interface ILayeredExport : IExport
{
    /// <summary>
    /// Describes the layer of the range from <paramref name="offset"/> in consecutive extents
    /// appended to <paramref name="extents"/>: at least one, no longer than
    /// <paramref name="length"/> together, at most <paramref name="maxExtents"/>.
    /// </summary>
    ValueTask GetLayersAsync(long offset, long length, int maxExtents, List<LayerExtent> extents);
}

/// <summary>Where a run of bytes comes from.</summary>
public enum Layer
{
    /// <summary>Neither layer holds it: it reads as zeros (zeroed, trimmed, or past the base).</summary>
    Zero = 0,
    /// <summary>The instance's own data in the store.</summary>
    Upper = 1,
    /// <summary>The base image.</summary>
    Base = 2,
}

/// <summary>A run of bytes from one layer.</summary>
public readonly record struct LayerExtent(long Length, Layer Layer);
