namespace BlockOverlay.Host.Tests.Docs;

/// <summary>The checkout the tests run from: its root, and its own files (not what builds and runs leave in it).</summary>
internal static class Repository
{
    /// <summary>Folders that builds, runs and tools make; nothing in them is the project's.</summary>
    private static readonly HashSet<string> Made = ["bin", "obj", ".git", "var", "TestResults", "out"];

    public static string Root { get; } = FindRoot();

    /// <summary>Every file of the project with text in it, as paths relative to the root.</summary>
    public static IEnumerable<string> TextFiles() =>
        Files(Root).Where(IsText).Select(path => Path.GetRelativePath(Root, path));

    private static IEnumerable<string> Files(string directory) =>
        Directory.EnumerateFiles(directory).Concat(Directory.EnumerateDirectories(directory)
            .Where(sub => !Made.Contains(Path.GetFileName(sub)))
            .SelectMany(Files));

    /// <summary>No NUL in its first 8 KiB: a text file, not an image or a binary.</summary>
    private static bool IsText(string path)
    {
        using var file = File.OpenRead(path);
        var head = new byte[8192];
        int read = file.Read(head);
        return Array.IndexOf(head, (byte)0, 0, read) < 0;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "BlockOverlay.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no BlockOverlay.sln above {AppContext.BaseDirectory}");
    }
}
