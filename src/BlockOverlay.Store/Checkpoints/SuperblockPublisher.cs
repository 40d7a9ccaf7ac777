using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Instances;

namespace BlockOverlay.Store.Checkpoints;

/// <summary>The current superblock, and the one way a new one becomes current.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> Two copies on the device (blocks 0 and 1); the one with the higher generation
/// is current. Each publish writes the other copy, so a torn write leaves the older one whole.
/// </para>
/// <para>
/// <b>Invariants.</b> A superblock is current in memory only once it is durable; each carries the
/// next instance id as it is at the time of writing.
/// </para>
/// <para>
/// <b>Locking.</b> Callers serialize publishing (the open, then checkpoints under their lock);
/// readers of <see cref="Current"/> see the last durable one.
/// </para>
/// <para><b>Durability.</b> Each copy is written durably (FUA) before it counts.</para>
/// </remarks>
internal sealed class SuperblockPublisher(IBlockDevice device, Superblock current, InstanceRegistry instances, StoreCounters counters)
{
    private const int BlockSize = Superblock.Size;
    private Superblock _current = current;

    public Superblock Current => Volatile.Read(ref _current);

    /// <summary>Writes <paramref name="next"/> as the next generation (with the next instance id), durably; then it is current.</summary>
    public async Task PublishAsync(Superblock next)
    {
        next = next with { Generation = _current.Generation + 1, NextInstanceId = instances.NextId };
        await WriteAsync(device, next);
        counters.Add(WriteReason.Checkpoint, BlockSize);
        Volatile.Write(ref _current, next);
    }

    /// <summary>Writes one copy (the one its generation selects), durably.</summary>
    public static async Task WriteAsync(IBlockDevice device, Superblock superblock)
    {
        using var buffer = new AlignedBuffer(BlockSize);
        superblock.Encode(buffer.Span);
        await device.WriteAsync(superblock.CopyBlock * BlockSize, buffer.Memory, durable: true);
    }

    /// <summary>The newer valid copy; if neither is valid, an error naming both problems.</summary>
    public static async Task<Superblock> ReadNewestAsync(IBlockDevice device)
    {
        long deviceBlocks = device.Size / BlockSize;
        var copies = new List<Superblock>();
        var problems = new List<string>();
        using var buffer = new AlignedBuffer(BlockSize);
        for (int copy = 0; copy < 2; copy++)
        {
            await device.ReadAsync(copy * BlockSize, buffer.Memory);
            try
            {
                copies.Add(Superblock.Decode(buffer.Span, $"superblock copy {(copy == 0 ? 'A' : 'B')} (block {copy})", deviceBlocks));
            }
            catch (StoreFormatException e)
            {
                problems.Add(e.Message);
            }
        }

        return copies.Count > 0
            ? copies.MaxBy(c => c.Generation)!
            : throw new StoreFormatException($"cannot open the store: {string.Join("; ", problems)}");
    }
}
