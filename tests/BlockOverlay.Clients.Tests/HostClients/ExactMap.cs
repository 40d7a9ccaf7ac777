using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// Maps compared extent by extent. A server may split a range of one type into several
/// extents (the protocol allows it), so neighbours of one type are merged before comparing;
/// nothing else is forgiven: every boundary and every type must be where expected.
/// </summary>
internal static class ExactMap
{
    /// <summary>Consecutive runs from offset 0, each given by where it ends and its type.</summary>
    public static IReadOnlyList<Extent> Runs(params (long End, int Type)[] runs)
    {
        var extents = new List<Extent>();
        long offset = 0;
        foreach (var (end, type) in runs)
        {
            extents.Add(new Extent(offset, end - offset, type));
            offset = end;
        }

        return extents;
    }

    /// <summary>Fails the test unless <paramref name="actual"/>, merged, is exactly <paramref name="expected"/>.</summary>
    public static void AssertEqual(IReadOnlyList<Extent> actual, IReadOnlyList<Extent> expected, string what) =>
        Assert.That(ExportContent.Describe(Merged(actual)), Is.EqualTo(ExportContent.Describe(expected)), what);

    private static List<Extent> Merged(IEnumerable<Extent> map)
    {
        var merged = new List<Extent>();
        foreach (var extent in map)
        {
            if (merged.Count > 0 && merged[^1].Type == extent.Type && merged[^1].End == extent.Offset)
            {
                merged[^1] = merged[^1] with { Length = merged[^1].Length + extent.Length };
            }
            else
            {
                merged.Add(extent);
            }
        }

        return merged;
    }
}
