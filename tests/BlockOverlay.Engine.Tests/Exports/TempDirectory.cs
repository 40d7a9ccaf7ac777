namespace BlockOverlay.Engine.Tests.Exports;

/// <summary>A directory that exists for one test and is removed with everything in it.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory(string? parent = null)
    {
        string root = parent ?? Path.GetTempPath();
        FullPath = Path.Combine(root, "blockoverlay-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(FullPath);
    }

    public string FullPath { get; }

    /// <summary>Creates a sparse file of <paramref name="size"/> bytes (all holes) and returns its path.</summary>
    public string CreateSparseFile(string name, long size)
    {
        string path = Path.Combine(FullPath, name);
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        stream.SetLength(size);
        return path;
    }

    public void Dispose()
    {
        if (Directory.Exists(FullPath))
        {
            Directory.Delete(FullPath, recursive: true);
        }
    }
}
