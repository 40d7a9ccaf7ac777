using BlockOverlay.Engine.Exports;

namespace BlockOverlay.Host.Config;

/// <summary>
/// Relative paths in a config file, made absolute against the file's directory, so that a
/// config means the same from any working directory. (Paths on the command line stay
/// relative to the working directory, as everywhere in a shell.)
/// </summary>
internal static class ConfigPaths
{
    /// <summary>A file path; an empty one is refused rather than taken as the directory itself.</summary>
    public static string File(string directory, string path) =>
        path.Length > 0 ? Full(directory, path) : throw new FormatException("an empty path");

    /// <summary>A listen address with a <c>unix:</c> path made absolute; other forms are left to the parser.</summary>
    public static string Listen(string directory, string address) =>
        address.StartsWith("unix:", StringComparison.Ordinal) && address.Length > "unix:".Length
            ? "unix:" + Full(directory, address["unix:".Length..])
            : address;

    /// <summary>
    /// <paramref name="path"/> made absolute. A NUL, which JSON can hold and a path cannot, is
    /// refused here as bad input (<see cref="Path.GetFullPath(string, string)"/> would call it a bad argument).
    /// </summary>
    private static string Full(string directory, string path) =>
        path.Contains('\0', StringComparison.Ordinal)
            ? throw new FormatException("a path cannot contain a NUL character")
            : Path.GetFullPath(path, directory);

    /// <summary>The export with a <c>file:</c> path made absolute.</summary>
    public static ExportSpec Export(string directory, ExportSpec spec) =>
        spec is FileExportSpec file ? new FileExportSpec(file.Name, Path.GetFullPath(file.Path, directory), file.ReadOnly) : spec;
}
