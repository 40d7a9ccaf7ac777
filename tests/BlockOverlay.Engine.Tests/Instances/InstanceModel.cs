using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// The model of one instance: its bytes, and per 4 KiB block the contents it may show after a
/// crash — its content at the last durable point (flush, FUA, clean close, recovery) and every
/// content it had since, including that of an operation still in flight.
/// </summary>
internal sealed class InstanceModel
{
    public const int Block = UpperStore.BlockSize;

    public InstanceModel(int index, string name, byte[] initial)
    {
        Index = index;
        Name = name;
        Bytes = initial;
    }

    public int Index { get; }

    public string Name { get; }

    /// <summary>This instance's own random stream: operations on one instance may run beside those on others.</summary>
    public Random Rng { get; init; } = new(0);

    public long Size => Bytes.Length;

    public long Blocks => Bytes.Length / Block;

    /// <summary>The instance's id in the store (changes when it is re-created).</summary>
    public uint Id { get; set; }

    /// <summary>What the instance reads now (every acknowledged and in-flight change applied).</summary>
    public byte[] Bytes { get; private set; }

    /// <summary>Set while a delete + re-create is in flight: the id it had before.</summary>
    public uint? RecreatingFrom { get; set; }

    /// <summary>While a re-create is in flight, what the new instance reads: null for its base, else a clone's source content.</summary>
    public byte[]? RecreatingAs { get; set; }

    /// <summary>Blocks changed since the last durable point: every content each may show after a crash, oldest first.</summary>
    public Dictionary<long, List<BlockVersion>> Pending { get; } = [];

    public Span<byte> BlockSpan(long block) => Bytes.AsSpan((int)(block * Block), Block);

    /// <summary>Applies a change of bytes [offset, offset+length) made by <paramref name="apply"/>, remembering each block's versions.</summary>
    public void Change(long offset, long length, string label, Action<Span<byte>> apply)
    {
        long first = offset / Block, last = (offset + length - 1) / Block;
        for (long b = first; b <= last; b++)
        {
            if (!Pending.ContainsKey(b))
            {
                Pending[b] = [new BlockVersion(BlockSpan(b).ToArray(), "durable")];
            }
        }

        apply(Bytes.AsSpan((int)offset, (int)length));
        for (long b = first; b <= last; b++)
        {
            var versions = Pending[b];
            if (!versions[^1].Content.AsSpan().SequenceEqual(BlockSpan(b)))
            {
                versions.Add(new BlockVersion(BlockSpan(b).ToArray(), label));
            }
        }
    }

    /// <summary>Everything so far is durable.</summary>
    public void MarkDurable() => Pending.Clear();

    /// <summary>The instance was re-created: it reads as <paramref name="initial"/>, durably.</summary>
    public void Reset(byte[] initial, uint id)
    {
        Bytes = initial;
        Id = id;
        Pending.Clear();
    }

    /// <summary>The contents a block may show after a crash.</summary>
    public IReadOnlyList<BlockVersion> Allowed(long block) =>
        Pending.TryGetValue(block, out var versions) ? versions : [new BlockVersion(BlockSpan(block).ToArray(), "durable")];
}
