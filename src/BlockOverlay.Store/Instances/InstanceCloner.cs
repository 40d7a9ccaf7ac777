using BlockOverlay.Io;
using BlockOverlay.Store.Data;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Instances;

/// <summary>Clone: a new instance whose starting view is the source's view in the store.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> The clone is created pending (not durable; with the source's flush mode, quota
/// and access rules), its upper data and zeroed ranges are copied from the source, then it is
/// published: one checkpoint makes its definition and whole map durable together. A crash
/// before that leaves no clone (its copied blocks are named by nothing, so free); if a step
/// fails or is stopped, it is deleted again.
/// </para>
/// <para>
/// <b>Invariants.</b> The base is shared (the clone records the same base); upper blocks are
/// copied, never shared, because every store block has exactly one owner (that is what keeps a
/// flush, a delete or a quota of one instance from touching another's data). Only what a read
/// found in the store is copied: a served source may change meanwhile (its server flushes it
/// first if the clone should hold what it acknowledged).
/// </para>
/// <para><b>Locking.</b> None of its own: the data path's and the namespace's.</para>
/// <para><b>Durability.</b> Durable, whole, when this returns; before, nothing of it is.</para>
/// </remarks>
internal sealed class InstanceCloner(IBlockDevice device, InstanceRegistry instances, InstanceNamespace names, DataPath data)
{
    private const int BlockSize = Superblock.Size;
    private const int CopyChunk = 1 << 20;

    public async Task<(StoreInstance Clone, long CopiedBytes)> CloneAsync(string source, string target, Action<long, long>? progress,
        CancellationToken stop)
    {
        var from = instances.Find(source) ?? throw new InstanceException($"no instance named '{source}'");
        await from.LoadAsync(device); // the copy looks its map up
        var d = from.Definition;
        // Pending until whole: a crash while it is being filled in leaves no half clone behind.
        var clone = await names.CreatePendingAsync(target, d.VirtualSize, d.Base, d.FlushMode, d.Quota, d.Access, d.Qos);
        try
        {
            long copied = await CopyAsync(from, clone, progress ?? ((_, _) => { }), stop);
            await names.PublishAsync(clone);
            return (clone, copied);
        }
        catch
        {
            await names.DeleteAsync(target);
            throw;
        }
    }

    /// <summary>Copies the source's upper data and zeroed ranges into the clone, 1 MiB at a time; reports (done, total) bytes.</summary>
    private async Task<long> CopyAsync(StoreInstance source, StoreInstance clone, Action<long, long> progress, CancellationToken stop)
    {
        var layout = new List<MappedExtent>();
        data.Lookup(source, 0, source.Blocks, layout);
        long total = layout.Where(e => e.Kind == ExtentKind.Upper).Sum(e => e.Length) * BlockSize, done = 0;
        using var buffer = new AlignedBuffer(CopyChunk);
        var read = new List<MappedExtent>();
        foreach (var extent in layout)
        {
            if (extent.Kind == ExtentKind.Zero)
            {
                data.Zero(clone, extent.VirtualBlock, extent.Length);
                continue;
            }

            for (long b = extent.VirtualBlock; extent.Kind == ExtentKind.Upper && b < extent.End; b += CopyChunk / BlockSize)
            {
                int blocks = (int)Math.Min(CopyChunk / BlockSize, extent.End - b);
                await data.ReadAsync(source, b, buffer.Memory[..(blocks * BlockSize)], read);
                // Only what the read found in the store: a served source may have changed since.
                foreach (var part in read.Where(p => p.Kind == ExtentKind.Upper))
                {
                    var bytes = buffer.Memory.Slice((int)((part.VirtualBlock - b) * BlockSize), (int)(part.Length * BlockSize));
                    await data.WriteBlocksAsync(clone, [(part.VirtualBlock, part.Length)], bytes, WriteReason.Background);
                }

                done += blocks * (long)BlockSize;
                progress(done, total);
                stop.ThrowIfCancellationRequested();
            }
        }

        return done;
    }
}
