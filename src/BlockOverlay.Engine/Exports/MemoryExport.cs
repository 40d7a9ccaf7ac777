using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Exports;

/// <summary>
/// A sparse disk held in memory: for tests, and the baseline against nbdkit's memory plugin.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>Layout.</b> The disk is cut into 64 KiB pages held in a radix tree of 4096-way nodes,
/// as deep as the size needs (1 level up to 256 MiB, 2 up to 1 TiB, 4 for the largest
/// size NBD allows). Interior nodes are created on first write below them and never
/// freed; pages are created on first write and freed by trim and zeroing. Memory is
/// therefore proportional to what was written (plus the 32 KiB root), never to the size.
/// </para>
/// <para>
/// <b>Why 64 KiB pages.</b> Small enough that a 4 KiB random write pays a modest first-touch
/// allocation and that trims of typical granularity (64 KiB and up) release memory; large
/// enough that the tree is tiny (8 bytes of slot and one small object per 64 KiB) and
/// block status walks few pages. 65,536 bytes also stays under the 85,000-byte large
/// object threshold, so pages are ordinary small-heap arrays. nbdkit's sparse array makes
/// the same trade at 32 KiB.
/// </para>
/// <para>
/// <b>States of a page slot.</b> Empty (reads as zeros, reported Hole|Zero) or holding a
/// page (reported Data, even if its bytes are zero). A page is <i>live</i> while it is in
/// its slot and <i>detached</i> once removed; a detached page is never put back.
/// </para>
/// <para>
/// <b>Locking rule.</b> Publication is lock-free: a new node or page is installed with
/// <see cref="Interlocked.CompareExchange{T}(ref T, T, T)"/> on an empty slot, and the loser
/// uses the winner's. Every change to a page's bytes (write, partial zero, NoHole zero) and
/// its removal happen under that page's own lock, and a writer that finds its page detached
/// once it holds the lock starts again from the tree. Hence: (1) writes to one page are
/// serialized, so concurrent writes never mix within a sector; (2) a write never lands in
/// a page that is no longer reachable, so a completed write is seen by every later read
/// until a later trim or zero. Reads take no lock: a read racing a write to the same bytes
/// may see old, new or a mix, as with any disk; a read holding a page that is concurrently
/// detached sees its last bytes (the GC keeps it alive), which is a valid outcome of the race.
/// </para>
/// <para>
/// <b>Zeroing.</b> Trim and zero without NoHole free whole pages and clear the partial
/// ones at the ends. Zero with NoHole clears pages that exist and leaves them allocated (they
/// keep reporting Data); empty slots already read as zeros and stay empty. Every zero is
/// fast, so FastZero never fails.
/// </para>
/// <para>
/// <b>Durability.</b> None: everything is lost with the process. Flush and FUA are accepted and
/// do nothing, because a completed write is already visible to every connection, which is
/// all a flush promises here; Flush and MultiConn are advertised so clients may send them.
/// </para>
/// </remarks>
public sealed class MemoryExport : IExport
{
    /// <summary>Page size in bytes; allocation, release and block status granularity.</summary>
    public const int PageSize = 1 << PageShift;

    private const int PageShift = 16;
    private const int FanoutShift = 12;
    private const int Fanout = 1 << FanoutShift;
    private const long FanoutMask = Fanout - 1;

    private readonly int _depth;
    private Node? _root;
    private long _allocatedPages;

    /// <summary>Creates an empty (all zeros) disk of <paramref name="size"/> bytes.</summary>
    /// <param name="size">Size in bytes, at least 0; any size up to <see cref="long.MaxValue"/>.</param>
    public MemoryExport(long size)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        Size = size;
        long pages = (long)(((ulong)size + PageSize - 1) >> PageShift);
        _depth = 1;
        while (_depth * FanoutShift < 63 && pages > 1L << (_depth * FanoutShift))
        {
            _depth++;
        }

        _root = new Node(leaf: _depth == 1);
    }

    public long Size { get; }

    public ExportCapabilities Capabilities =>
        ExportCapabilities.Flush | ExportCapabilities.Trim | ExportCapabilities.FastZero |
        ExportCapabilities.Cache | ExportCapabilities.MultiConn;

    public string Description => $"memory, {new ByteSize(Size)}";

    /// <summary>Bytes of page memory currently allocated (a multiple of <see cref="PageSize"/>).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedPages) * PageSize;

    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        try
        {
            Read(offset, buffer.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags)
    {
        try
        {
            Write(offset, data.Span);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public ValueTask FlushAsync() => Completed();

    public ValueTask TrimAsync(long offset, long length, WriteFlags flags) =>
        ZeroAsync(offset, length, ZeroFlags.None);

    public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags)
    {
        try
        {
            Zero(offset, length, keepAllocated: (flags & ZeroFlags.NoHole) != 0);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    public ValueTask CacheAsync(long offset, long length) => Completed();

    /// <summary>Nothing to write back: the memory is the disk.</summary>
    public ValueTask ClientDetachedAsync() => ValueTask.CompletedTask;

    public ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        try
        {
            GetAllocation(offset, length, maxExtents, extents);
            return ValueTask.CompletedTask;
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>Drops every page; later operations throw <see cref="ObjectDisposedException"/>.</summary>
    public ValueTask DisposeAsync()
    {
        _root = null;
        Interlocked.Exchange(ref _allocatedPages, 0);
        return ValueTask.CompletedTask;
    }

    private void Read(long offset, Span<byte> buffer)
    {
        Node root = Root();
        while (!buffer.IsEmpty)
        {
            long pageIndex = offset >> PageShift;
            int inPage = (int)(offset & (PageSize - 1));
            int count = Math.Min(buffer.Length, PageSize - inPage);
            Span<byte> target = buffer[..count];

            Page? page = FindPage(root, pageIndex, out _, out _);
            if (page is null)
            {
                target.Clear();
            }
            else
            {
                page.Bytes.AsSpan(inPage, count).CopyTo(target);
            }

            buffer = buffer[count..];
            offset += count;
        }
    }

    private void Write(long offset, ReadOnlySpan<byte> data)
    {
        Node root = Root();
        while (!data.IsEmpty)
        {
            long pageIndex = offset >> PageShift;
            int inPage = (int)(offset & (PageSize - 1));
            int count = Math.Min(data.Length, PageSize - inPage);
            ReadOnlySpan<byte> source = data[..count];

            while (true)
            {
                Page page = GetOrAddPage(root, pageIndex);
                lock (page.Gate)
                {
                    if (!page.Detached)
                    {
                        source.CopyTo(page.Bytes.AsSpan(inPage, count));
                        break;
                    }
                }
            }

            data = data[count..];
            offset += count;
        }
    }

    private void Zero(long offset, long length, bool keepAllocated)
    {
        Node root = Root();
        long end = offset + length;
        while (offset < end)
        {
            long pageIndex = offset >> PageShift;
            int inPage = (int)(offset & (PageSize - 1));
            int count = (int)Math.Min(end - offset, PageSize - inPage);
            offset += count;

            Page? page = FindPage(root, pageIndex, out Node? leaf, out int slot);
            if (page is null)
            {
                // Skip the whole empty subtree, so trimming a huge empty range is quick.
                long emptyEnd = (pageIndex + Probe(root, pageIndex, out _)) << PageShift;
                offset = emptyEnd <= 0 || emptyEnd > end ? end : Math.Max(offset, emptyEnd);
                continue;
            }

            lock (page.Gate)
            {
                if (page.Detached)
                {
                    // Removed by a concurrent trim or zero; whatever now sits in the slot
                    // came from a write racing this zero and may stay.
                    continue;
                }

                if (count == PageSize && !keepAllocated)
                {
                    page.Detached = true;
                    Interlocked.CompareExchange(ref leaf!.Pages![slot], null, page);
                    Interlocked.Decrement(ref _allocatedPages);
                }
                else
                {
                    page.Bytes.AsSpan(inPage, count).Clear();
                }
            }
        }
    }

    private void GetAllocation(long offset, long length, int maxExtents, List<Extent> extents)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExtents);
        Node root = Root();
        long end = offset + length;
        int added = 0;
        long runStart = offset;
        ExtentState runState = default;
        bool haveRun = false;

        long position = offset;
        while (position < end)
        {
            long pageIndex = position >> PageShift;
            long knownPages = Probe(root, pageIndex, out bool allocated);
            ExtentState state = allocated ? ExtentState.Data : ExtentState.Hole | ExtentState.Zero;
            long knownEnd = (pageIndex + knownPages) << PageShift;
            long next = knownEnd <= 0 || knownEnd > end ? end : knownEnd;

            if (!haveRun)
            {
                runState = state;
                haveRun = true;
            }
            else if (state != runState)
            {
                extents.Add(new Extent(position - runStart, runState));
                if (++added == maxExtents)
                {
                    return;
                }

                runStart = position;
                runState = state;
            }

            position = next;
        }

        extents.Add(new Extent(end - runStart, runState));
    }

    /// <summary>
    /// Whether <paramref name="pageIndex"/> is allocated, and for how many pages from there
    /// the answer is the same as far as one descent can tell (a whole empty subtree at once).
    /// </summary>
    private long Probe(Node root, long pageIndex, out bool allocated)
    {
        Node node = root;
        for (int level = _depth - 1; level > 0; level--)
        {
            Node? child = Volatile.Read(ref node.Children![SlotAt(pageIndex, level)]);
            if (child is null)
            {
                allocated = false;
                long span = 1L << (level * FanoutShift);
                return span - (pageIndex & (span - 1));
            }

            node = child;
        }

        allocated = Volatile.Read(ref node.Pages![pageIndex & FanoutMask]) is not null;
        return 1;
    }

    private Page? FindPage(Node root, long pageIndex, out Node? leaf, out int slot)
    {
        Node node = root;
        for (int level = _depth - 1; level > 0; level--)
        {
            Node? child = Volatile.Read(ref node.Children![SlotAt(pageIndex, level)]);
            if (child is null)
            {
                leaf = null;
                slot = 0;
                return null;
            }

            node = child;
        }

        leaf = node;
        slot = (int)(pageIndex & FanoutMask);
        return Volatile.Read(ref node.Pages![slot]);
    }

    private Page GetOrAddPage(Node root, long pageIndex)
    {
        Node node = root;
        for (int level = _depth - 1; level > 0; level--)
        {
            ref Node? childSlot = ref node.Children![SlotAt(pageIndex, level)];
            Node? child = Volatile.Read(ref childSlot);
            if (child is null)
            {
                var fresh = new Node(leaf: level == 1);
                child = Interlocked.CompareExchange(ref childSlot, fresh, null) ?? fresh;
            }

            node = child;
        }

        ref Page? pageSlot = ref node.Pages![pageIndex & FanoutMask];
        Page? page = Volatile.Read(ref pageSlot);
        if (page is null)
        {
            var fresh = new Page();
            page = Interlocked.CompareExchange(ref pageSlot, fresh, null);
            if (page is null)
            {
                Interlocked.Increment(ref _allocatedPages);
                page = fresh;
            }
        }

        return page;
    }

    /// <summary>A completed task, or a faulted one once disposed.</summary>
    private ValueTask Completed() =>
        Volatile.Read(ref _root) is null
            ? ValueTask.FromException(new ObjectDisposedException(nameof(MemoryExport)))
            : ValueTask.CompletedTask;

    private static int SlotAt(long pageIndex, int level) => (int)((pageIndex >> (level * FanoutShift)) & FanoutMask);

    private Node Root()
    {
        Node? root = Volatile.Read(ref _root);
        ObjectDisposedException.ThrowIf(root is null, this);
        return root;
    }

    /// <summary>A tree node: interior (children) or leaf (pages), never both.</summary>
    private sealed class Node(bool leaf)
    {
        public readonly Node?[]? Children = leaf ? null : new Node?[Fanout];
        public readonly Page?[]? Pages = leaf ? new Page?[Fanout] : null;
    }

    private sealed class Page
    {
        public readonly byte[] Bytes = new byte[PageSize];
        public readonly Lock Gate = new();

        /// <summary>Removed from its slot; guarded by <see cref="Gate"/>.</summary>
        public bool Detached;
    }
}
