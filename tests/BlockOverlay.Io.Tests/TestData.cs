using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

/// <summary>Recognisable content, and the small steps every device test repeats.</summary>
internal static class TestData
{
    public const int Block = IBlockDevice.BlockSize;

    /// <summary>
    /// Bytes that identify their tag at every position: two tags that differ modulo 256 differ in
    /// every byte (37 is odd, so tag * 37 does too), so any sector tells which write it came from.
    /// </summary>
    public static byte[] Pattern(int tag, int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((tag * 37) + i + (i >> 9));
        }

        return bytes;
    }

    /// <summary>An aligned buffer holding <see cref="Pattern"/>.</summary>
    public static AlignedBuffer PatternBuffer(int tag, int length)
    {
        var buffer = new AlignedBuffer(length);
        Pattern(tag, length).CopyTo(buffer.Span);
        return buffer;
    }

    public static async Task WriteAsync(IBlockDevice device, long offset, int tag, int length, bool durable)
    {
        using var buffer = PatternBuffer(tag, length);
        await device.WriteAsync(offset, buffer.Memory, durable);
    }

    public static async Task<byte[]> ReadAsync(IBlockDevice device, long offset, int length)
    {
        using var buffer = new AlignedBuffer(length);
        await device.ReadAsync(offset, buffer.Memory);
        return buffer.Span.ToArray();
    }
}

/// <summary>
/// A fresh directory for store files under the test output directory, which lives on the
/// repository's disk file system: O_DIRECT needs one (tmpfs before Linux 6.6 refuses it, and
/// /tmp is tmpfs on many hosts). Deleted with everything in it on dispose.
/// </summary>
internal sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory()
    {
        Path = System.IO.Path.Combine(TestContext.CurrentContext.WorkDirectory, "io-scratch", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a store file, or ignores the test if this file system has no direct I/O.</summary>
    public async Task<FileDevice> CreateStoreAsync(string name, long size, IoBackend backend = IoBackend.Auto)
    {
        try
        {
            return await FileDevice.CreateAsync(File(name), size, backend);
        }
        catch (IOException e) when (e.HResult == 22)
        {
            Assert.Ignore($"O_DIRECT is unavailable in {Path}: {e.Message}");
            throw;
        }
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
