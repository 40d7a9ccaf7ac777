using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>One entry of <c>nbdinfo --map --json</c>: a range and its type (base:allocation: 1 hole, 2 zero).</summary>
internal sealed record Extent(long Offset, long Length, int Type)
{
    public long End => Offset + Length;
}

/// <summary>An export's bytes and maps as real clients (nbdcopy, nbdinfo) see them, and byte models to compare with.</summary>
internal static class ExportContent
{
    /// <summary>The whole export, copied out by nbdcopy into a file of the workspace and read back.</summary>
    public static byte[] CopyOut(StoreServer server, StoreWorkspace workspace, string export)
    {
        var file = workspace[$"copy-{export}-{Guid.NewGuid():N}.img"];
        var result = ClientTool.Nbdcopy.Run([server.UnixUri(export), file], TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        var bytes = File.ReadAllBytes(file);
        File.Delete(file);
        return bytes;
    }

    /// <summary><c>nbdinfo --map[=CONTEXT] --json</c> of the export.</summary>
    public static IReadOnlyList<Extent> Map(StoreServer server, string export, string context = "base:allocation")
    {
        var result = ClientTool.Nbdinfo.Run($"--map={context}", "--json", server.UnixUri(export));
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        using var json = JsonDocument.Parse(result.Stdout);
        return json.RootElement.EnumerateArray()
            .Select(e => new Extent(e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("type").GetInt32()))
            .ToList();
    }

    /// <summary>The types the map gives the bytes of [offset, offset + length), each once.</summary>
    public static IReadOnlySet<int> TypesOver(IReadOnlyList<Extent> map, long offset, long length) =>
        map.Where(e => e.Offset < offset + length && e.End > offset).Select(e => e.Type).ToHashSet();

    /// <summary>A copy of <paramref name="image"/> grown (with zeros) or cut to <paramref name="size"/>.</summary>
    public static byte[] Resized(byte[] image, long size)
    {
        var result = new byte[size];
        image.AsSpan(0, (int)Math.Min(size, image.Length)).CopyTo(result);
        return result;
    }

    /// <summary>A description of the first difference, or null when the two are equal.</summary>
    public static string? FirstDifference(byte[] actual, byte[] expected)
    {
        if (actual.AsSpan().SequenceEqual(expected))
        {
            return null;
        }

        var at = actual.AsSpan().CommonPrefixLength(expected);
        if (at >= Math.Min(actual.Length, expected.Length))
        {
            return $"length {actual.Length}, expected {expected.Length}";
        }

        return $"first difference at byte {at} (block {at / StoreWorkspace.Block}): 0x{actual[at]:x2}, expected 0x{expected[at]:x2}";
    }

    public static string Describe(IEnumerable<Extent> map) =>
        string.Join(", ", map.Select(e => $"[{e.Offset}+{e.Length}: {e.Type}]"));
}
