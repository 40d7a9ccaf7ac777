using BlockOverlay.Store.Format;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Checkpoints;

/// <summary>One group of the current checkpoint: where it lies and, per instance id, where that instance's map segment is.</summary>
internal sealed record CheckpointGroup(PartRef Ref, IReadOnlyDictionary<uint, SegmentRef> Members);

/// <summary>
/// The current durable checkpoint's parts as the checkpointer knows them: its groups (with the
/// segment of each instance they hold), its space pages and the space record they spell. The
/// next checkpoint keeps every part of it that did not change.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> Empty for a store with no checkpoint yet or with a checkpoint of the older
/// whole format (<see cref="CheckpointFormat"/>): then the next checkpoint writes everything.
/// </para>
/// <para>
/// <b>Invariants.</b> It describes the checkpoint the current superblock names, and nothing
/// newer: a checkpoint replaces it (<see cref="Next"/>) only once it is durable. Every block it
/// names (groups, pages, segments) is in use; the root is named by the superblock.
/// </para>
/// <para><b>Locking.</b> None: the checkpointer uses it under its lock; recovery makes it alone.</para>
/// <para><b>Durability.</b> Memory only: a picture of parts already durable.</para>
/// </remarks>
internal sealed class CheckpointIndex(IReadOnlyDictionary<long, CheckpointGroup> groups, IReadOnlyDictionary<long, PartRef> pages, SpaceRecord space)
{
    public static CheckpointIndex Empty() => new(new Dictionary<long, CheckpointGroup>(), new Dictionary<long, PartRef>(), new SpaceRecord());

    public IReadOnlyDictionary<long, CheckpointGroup> Groups => groups;

    public IReadOnlyDictionary<long, PartRef> Pages => pages;

    public SpaceRecord Space => space;

    /// <summary>The group an instance id belongs to.</summary>
    public static long GroupOf(uint id) => id / CheckpointParts.GroupSize;

    /// <summary>Where the checkpoint holds this instance's map; null when it does not hold the instance.</summary>
    public SegmentRef? SegmentOf(uint id) =>
        groups.TryGetValue(GroupOf(id), out var group) && group.Members.TryGetValue(id, out var segment) ? segment : null;

    /// <summary>Every block its parts use, but the root's: groups, pages, segments.</summary>
    public IEnumerable<(long Start, long Length, string What)> Runs()
    {
        foreach (var (index, group) in groups)
        {
            yield return (group.Ref.StoreBlock, group.Ref.Blocks, $"checkpoint group {index}");
            foreach (var (id, segment) in group.Members.Where(m => m.Value.StoreBlock != 0))
            {
                yield return (segment.StoreBlock, segment.Blocks, $"the map segment of instance {id}");
            }
        }

        foreach (var (index, page) in pages)
        {
            yield return (page.StoreBlock, page.Blocks, $"checkpoint space page {index}");
        }
    }

    /// <summary>Bytes of its parts but the root.</summary>
    public long Bytes => groups.Values.Sum(g => g.Ref.Bytes + g.Members.Values.Sum(s => s.Bytes)) + pages.Values.Sum(p => (long)p.Bytes);

    /// <summary>The index of the checkpoint that replaced some groups and pages of this one (its space edit applied by the caller).</summary>
    public CheckpointIndex Next(IReadOnlyDictionary<long, CheckpointGroup?> changedGroups, IReadOnlyDictionary<long, PartRef?> changedPages)
    {
        var nextGroups = new Dictionary<long, CheckpointGroup>(groups);
        foreach (var (index, group) in changedGroups)
        {
            Set(nextGroups, index, group);
        }

        var nextPages = new Dictionary<long, PartRef>(pages);
        foreach (var (index, page) in changedPages)
        {
            if (page is { } p)
            {
                nextPages[index] = p;
            }
            else
            {
                nextPages.Remove(index);
            }
        }

        return new CheckpointIndex(nextGroups, nextPages, space);
    }

    private static void Set(Dictionary<long, CheckpointGroup> into, long index, CheckpointGroup? group)
    {
        if (group is null)
        {
            into.Remove(index);
        }
        else
        {
            into[index] = group;
        }
    }
}

/// <summary>Reading one checkpoint part back: its bytes, refused unless they match the checksum whatever names them keeps.</summary>
internal static class CheckpointPartReader
{
    public static async Task<byte[]> ReadAsync(BlockOverlay.Io.IBlockDevice device, long start, long bytes, ulong checksum, string where)
    {
        using var buffer = new BlockOverlay.Io.AlignedBuffer((int)(Superblock.BlocksFor(bytes) * Superblock.Size));
        await device.ReadAsync(start * Superblock.Size, buffer.Memory);
        var part = buffer.Span[..(int)bytes].ToArray();
        return Checksums.Of(part) == checksum
            ? part
            : throw new StoreFormatException($"{where} at block {start} ({bytes} bytes): does not match the checksum recorded for it (corrupt)");
    }

    /// <summary>An instance's map as a checkpoint segment holds it.</summary>
    public static async Task<List<CheckpointExtent>> ReadSegmentAsync(BlockOverlay.Io.IBlockDevice device, uint id, SegmentRef segment) =>
        segment.StoreBlock == 0
            ? []
            : CheckpointParts.DecodeSegment(await ReadAsync(device, segment.StoreBlock, segment.Bytes, segment.Checksum, $"checkpoint: the map segment of instance {id}"),
                $"checkpoint: the map segment of instance {id}");
}
