namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>A temporary directory for a test's images, deleted with everything in it.</summary>
internal sealed class ScratchDirectory : IDisposable
{
    public ScratchDirectory() => Path = Directory.CreateTempSubdirectory("blockoverlay-clients-data-").FullName;

    public string Path { get; }

    /// <summary>The full path of <paramref name="name"/> inside this directory.</summary>
    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>A sparse file of <paramref name="size"/> bytes, all zeros.</summary>
    public string CreateEmptyImage(string name, long size)
    {
        var path = this[name];
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        file.SetLength(size);
        return path;
    }

    /// <summary>
    /// A sparse image of <paramref name="size"/> bytes holding one block of
    /// <paramref name="blockSize"/> random bytes every <paramref name="stride"/> bytes,
    /// each moved off alignment by a different amount, zeros elsewhere.
    /// </summary>
    public string CreateSparseImage(string name, long size, int blockSize, long stride, int seed)
    {
        var path = CreateEmptyImage(name, size);
        var random = new Random(seed);
        var block = new byte[blockSize];
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        for (long i = 0; i * stride < size; i++)
        {
            var offset = i * stride + i * 4099 % 65536;
            if (offset + blockSize > size)
            {
                break;
            }

            random.NextBytes(block);
            file.Position = offset;
            file.Write(block);
        }

        return path;
    }

    /// <summary>The offset of the first byte where the files differ, or null if they are equal.</summary>
    public static long? FirstDifference(string pathA, string pathB)
    {
        const int Chunk = 1 << 20;
        using var a = File.OpenHandle(pathA);
        using var b = File.OpenHandle(pathB);
        var bufferA = new byte[Chunk];
        var bufferB = new byte[Chunk];
        for (long offset = 0; ;)
        {
            var readA = RandomAccess.Read(a, bufferA, offset);
            var readB = RandomAccess.Read(b, bufferB, offset);
            var common = Math.Min(readA, readB);
            var spanA = bufferA.AsSpan(0, common);
            var spanB = bufferB.AsSpan(0, common);
            if (readA != readB || !spanA.SequenceEqual(spanB))
            {
                return offset + spanA.CommonPrefixLength(spanB);
            }

            if (readA == 0)
            {
                return null;
            }

            offset += readA;
        }
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
