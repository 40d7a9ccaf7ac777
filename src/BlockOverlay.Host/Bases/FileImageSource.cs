using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// A raw image file to import, read through a read-only <see cref="FileExport"/>: the same
/// reads and SEEK_DATA/SEEK_HOLE allocation the server uses for file exports.
/// </summary>
internal sealed class FileImageSource : IImageSource
{
    private readonly FileExport _file;
    private readonly List<Extent> _extents = [];

    private FileImageSource(string name, FileExport file)
    {
        Name = name;
        _file = file;
    }

    public string Name { get; }

    public long Size => _file.Size;

    public static FileImageSource Open(string path) => new(path, FileExport.Open(path, readOnly: true));

    public async ValueTask<ImageRun> RunAtAsync(long offset, long maxLength)
    {
        _extents.Clear();
        await _file.GetAllocationAsync(offset, maxLength, maxExtents: 1, _extents);
        var first = _extents[0];
        return new ImageRun(Math.Min(first.Length, maxLength), first.State.HasFlag(ExtentState.Zero));
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => _file.ReadAsync(offset, buffer);

    public ValueTask DisposeAsync() => _file.DisposeAsync();
}
