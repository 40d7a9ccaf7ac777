using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Space;

/// <summary>
/// The persisted record of which store blocks the maps of the current checkpoint name: a
/// bitmap in pages of <see cref="CheckpointParts.BlocksPerSpacePage"/> blocks, of which only
/// pages with a marked block exist.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> A block is marked when a map segment of the current checkpoint names it as
/// upper data; nothing else is (metadata blocks are named by the checkpoint's root and groups).
/// </para>
/// <para>
/// <b>Invariants.</b> Marked = the union of the upper runs of the checkpoint's segments, exactly
/// (the checker cross-checks it). A checkpoint changes it through an <see cref="Edit"/> whose
/// clears come before its marks (a block one instance dropped may be another's now), and which
/// becomes current only once that checkpoint is durable: clearing an unmarked block or marking
/// a marked one is a bug and throws.
/// </para>
/// <para>
/// <b>Locking.</b> None: the checkpointer (under its lock) and recovery (alone) use it.
/// </para>
/// <para><b>Durability.</b> Its pages are checkpoint parts: written before the root that names them.</para>
/// </remarks>
internal sealed class SpaceRecord
{
    private readonly Dictionary<long, byte[]> _pages = [];

    /// <summary>The page's bitmap, or null when no block of it is marked.</summary>
    public byte[]? Page(long index) => _pages.GetValueOrDefault(index);

    /// <summary>Sets a page as read from a checkpoint (recovery).</summary>
    public void Load(long index, byte[] page) => _pages[index] = page;

    /// <summary>The marked runs, in block order (a byte at a time where it is all clear or all marked: recovery walks every page).</summary>
    public IEnumerable<(long Start, long Length)> MarkedRuns()
    {
        long start = -1, length = 0;
        foreach (long index in _pages.Keys.Order())
        {
            var page = _pages[index];
            for (int i = 0; i < page.Length; i++)
            {
                long first = (index * CheckpointParts.BlocksPerSpacePage) + (i * 8L);
                if (page[i] == 0)
                {
                    continue;
                }

                if (page[i] == 0xFF && start >= 0 && start + length == first)
                {
                    length += 8;
                    continue;
                }

                for (int bit = 0; bit < 8; bit++)
                {
                    if ((page[i] & (1 << bit)) == 0)
                    {
                        continue;
                    }

                    long block = first + bit;
                    if (start >= 0 && start + length == block)
                    {
                        length++;
                        continue;
                    }

                    if (start >= 0)
                    {
                        yield return (start, length);
                    }

                    (start, length) = (block, 1);
                }
            }
        }

        if (start >= 0)
        {
            yield return (start, length);
        }
    }

    /// <summary>
    /// A copy with <paramref name="runs"/> cleared, this record unchanged (recovery: less the
    /// segments of the maps it loaded). A run not wholly marked throws, as an edit's clear does.
    /// </summary>
    public SpaceRecord Without(IEnumerable<(long Start, long Length)> runs)
    {
        var copy = new SpaceRecord();
        foreach (var (index, page) in _pages)
        {
            copy._pages[index] = page; // shared until the edit below copies what it changes
        }

        var edit = new Edit(copy);
        foreach (var (start, length) in runs)
        {
            edit.Clear(start, length);
        }

        edit.Apply();
        return copy;
    }

    /// <summary>Blocks marked in a page.</summary>
    public static int CountMarked(byte[] page) => (int)page.Sum(b => (long)System.Numerics.BitOperations.PopCount(b));

    /// <summary>Changes for one checkpoint, kept apart until it is durable.</summary>
    public sealed class Edit(SpaceRecord record)
    {
        private readonly Dictionary<long, byte[]> _changed = [];

        /// <summary>The pages changed, each whole as it will be (all zeros: the page goes).</summary>
        public IReadOnlyDictionary<long, byte[]> Changed => _changed;

        public void Clear(long start, long length) => Change(start, length, mark: false);

        public void Mark(long start, long length) => Change(start, length, mark: true);

        /// <summary>The checkpoint is durable: its pages are the record's now.</summary>
        public void Apply()
        {
            foreach (var (index, page) in _changed)
            {
                if (page.AsSpan().ContainsAnyExcept((byte)0))
                {
                    record._pages[index] = page;
                }
                else
                {
                    record._pages.Remove(index);
                }
            }
        }

        private void Change(long start, long length, bool mark)
        {
            for (long block = start; block < start + length; block++)
            {
                long index = block / CheckpointParts.BlocksPerSpacePage;
                if (!_changed.TryGetValue(index, out var page))
                {
                    page = record.Page(index)?.ToArray() ?? new byte[CheckpointParts.SpacePageBytes];
                    _changed[index] = page;
                }

                int bit = (int)(block % CheckpointParts.BlocksPerSpacePage);
                byte mask = (byte)(1 << (bit & 7));
                if (((page[bit >> 3] & mask) != 0) == mark)
                {
                    throw new InvalidOperationException(
                        $"the space record {(mark ? "already marks" : "does not mark")} store block {block}: a checkpoint's maps disagree with it");
                }

                page[bit >> 3] ^= mask;
            }
        }
    }
}
