namespace BlockOverlay.Store.Maps;

/// <summary>The node shapes of <see cref="ExtentTree"/>: leaves of extents, branches of slots.</summary>
/// <remarks>
/// States and invariants are the tree's (see <see cref="ExtentTree"/>): a node's live items are
/// the first <c>Count</c> of its array, sorted; <c>Uncommitted</c> is kept equal to the
/// uncommitted extents below it by <c>Refresh</c> after every change. Locking: none (the map's
/// owner holds its gate). Durability: memory only; the journal and checkpoints persist maps.
/// </remarks>
internal sealed partial class ExtentTree
{
    private abstract class Node
    {
        /// <summary>Items in use, at the start of the node's array.</summary>
        public int Count { get; set; }

        /// <summary>Uncommitted extents in this subtree.</summary>
        public int Uncommitted { get; set; }

        public abstract long MinKey { get; }

        public abstract bool IsUnderfull { get; }
    }

    private abstract class Node<T> : Node
        where T : struct
    {
        protected Node(int capacity) => Items = new T[capacity];

        public T[] Items { get; }

        public Span<T> Live => Items.AsSpan(0, Count);

        public override bool IsUnderfull => Count < Items.Length / 2;

        public abstract Node<T> CreateSibling();

        /// <summary>Recomputes <see cref="Node.Uncommitted"/> after the items changed.</summary>
        public abstract void Refresh();

        public void Fill(ReadOnlySpan<T> items)
        {
            items.CopyTo(Items);
            if (items.Length < Count)
            {
                Items.AsSpan(items.Length, Count - items.Length).Clear();
            }

            Count = items.Length;
            Refresh();
        }
    }

    private sealed class Leaf(int capacity) : Node<Extent>(capacity)
    {
        public override long MinKey => Items[0].Start;

        public override Node<Extent> CreateSibling() => new Leaf(Items.Length);

        public override void Refresh() => Uncommitted = CountUncommitted();

        public int CountUncommitted()
        {
            int uncommitted = 0;
            foreach (var extent in Live)
            {
                uncommitted += extent.Committed ? 0 : 1;
            }

            return uncommitted;
        }

        /// <summary>Index of the first extent starting at or after <paramref name="block"/>.</summary>
        public int LowerBound(long block)
        {
            int lo = 0, hi = Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (Items[mid].Start < block)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo;
        }
    }

    private sealed class Branch(int capacity) : Node<Slot>(capacity)
    {
        public override long MinKey => Items[0].Key;

        public override Node<Slot> CreateSibling() => new Branch(Items.Length);

        public override void Refresh() => Uncommitted = SumUncommitted();

        public int SumUncommitted()
        {
            int uncommitted = 0;
            foreach (var slot in Live)
            {
                uncommitted += slot.Node.Uncommitted;
            }

            return uncommitted;
        }

        /// <summary>Index of the child whose range holds <paramref name="block"/>: the last whose key is ≤ it, or 0.</summary>
        public int Route(long block)
        {
            int lo = 1, hi = Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (Items[mid].Key <= block)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            return lo - 1;
        }
    }

    /// <summary>A branch's reference to a child, with the child's least start kept beside it for routing.</summary>
    private readonly struct Slot(Node node)
    {
        public long Key { get; } = node.MinKey;

        public Node Node { get; } = node;

        public static Slot[] For(List<Node> nodes)
        {
            var slots = new Slot[nodes.Count];
            for (int i = 0; i < slots.Length; i++)
            {
                slots[i] = new Slot(nodes[i]);
            }

            return slots;
        }
    }
}
