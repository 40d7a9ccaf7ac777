using System.Security.Cryptography;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Engine.Tests.Exports;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// A base image for tests: seeded random bytes in a file on a real file system (the temp
/// directory; never /dev/shm), with its identity as an instance records it.
/// </summary>
internal sealed class TestBase : IDisposable
{
    private readonly TempDirectory _directory;

    private TestBase(TempDirectory directory, string path, byte[] bytes, BaseIdentity identity)
    {
        _directory = directory;
        Path = path;
        Bytes = bytes;
        Identity = identity;
    }

    public string Path { get; }

    /// <summary>The content written at creation: what the file must hold for ever.</summary>
    public byte[] Bytes { get; }

    public BaseIdentity Identity { get; }

    public string Directory => _directory.FullPath;

    public static async Task<TestBase> CreateAsync(int seed, int size, string name = "base.img")
    {
        var directory = new TempDirectory();
        try
        {
            string path = System.IO.Path.Combine(directory.FullPath, name);
            byte[] bytes = new byte[size];
            new Random(seed).NextBytes(bytes);
            await File.WriteAllBytesAsync(path, bytes);
            return new TestBase(directory, path, bytes, await IdentifyAsync(path));
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    public static async Task<BaseIdentity> IdentifyAsync(string path)
    {
        await using var image = BaseImage.Open(path);
        return await image.IdentifyAsync();
    }

    /// <summary>SHA-256 of the file as it is now.</summary>
    public byte[] HashFile() => SHA256.HashData(File.ReadAllBytes(Path));

    /// <summary>What an instance of <paramref name="size"/> bytes over this base reads before any write.</summary>
    public byte[] InitialContent(long size)
    {
        byte[] content = new byte[size];
        Bytes.AsSpan(0, (int)Math.Min(size, Bytes.Length)).CopyTo(content);
        return content;
    }

    public void Dispose() => _directory.Dispose();
}
