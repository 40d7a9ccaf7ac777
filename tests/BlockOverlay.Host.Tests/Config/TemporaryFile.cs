namespace BlockOverlay.Host.Tests.Config;

/// <summary>A config file in a directory of its own under the temporary directory, deleted with it.</summary>
internal sealed class TemporaryFile : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("blockoverlay-config-").FullName;

    public TemporaryFile(string text)
    {
        Path = System.IO.Path.Combine(_directory, "config.json");
        File.WriteAllText(Path, text);
    }

    public string Path { get; }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
