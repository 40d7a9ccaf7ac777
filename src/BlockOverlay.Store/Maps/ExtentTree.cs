namespace BlockOverlay.Store.Maps;

/// <summary>
/// The ordered container behind <see cref="ExtentMap"/>: a B+ tree of non-overlapping
/// <see cref="Extent"/>s keyed by their first virtual block.
/// </summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>Shape.</b> Leaves hold up to <c>capacity</c> extents in a sorted array; branches hold up to
/// <c>capacity</c> (key, child) slots whose key is the least start in that child, exactly, so
/// descending to the last slot with key ≤ x always reaches the subtree that holds the floor
/// of x. All leaves are at the same depth. Every node but the root holds at least
/// <c>capacity / 2</c> items; the root is a leaf or a branch of two or more slots, and an
/// empty tree has no root at all (no leaf until its first extent, none after its last: a
/// store holds thousands of instances whose maps are empty, and a leaf is 1.5 KiB). Unused
/// branch slots are cleared so dropped subtrees are garbage at once. Every node also counts
/// the uncommitted extents below it, so a flush finds its extents without walking clean
/// subtrees.
/// </para>
/// <para>
/// <b>One write primitive.</b> <see cref="Replace"/> swaps every extent whose start lies in
/// [lo, hi) for a sorted run of new ones in one descent: it recurses into the (at most two)
/// children the range cuts, drops the children wholly inside it, spills new right siblings
/// upward when a node overflows (packed evenly, so each is at least half full) and joins a
/// node that fell below half full with a neighbour (which may leave the seam between their
/// children below half full in turn, so joins recurse down that seam). Cost: O(capacity)
/// per node on the two cut paths and on any seam a join walks down, O(log n) paths in all,
/// plus O(k) for the k extents removed or added; the common case changes one leaf in place.
/// </para>
/// <para>
/// <b>Why a B+ tree.</b> Extents sit 24 bytes apiece in arrays: with leaves between half
/// and fully used that is 24-48 bytes per extent (36 measured after a million random
/// inserts) plus a 16-byte branch slot per node. A <see cref="SortedSet{T}"/> would cost a
/// 64-80 byte node and a pointer chase per level per extent, remove a range one element
/// at a time (O(k log n)) and allocate a view per query. A height of 4 covers 10^7
/// extents, and a lookup touches a few cache lines per level.
/// </para>
/// <para>
/// <b>Locking.</b> None; see <see cref="ExtentMap"/>.
/// </para>
/// </remarks>
internal sealed partial class ExtentTree
{
    private readonly int _capacity;
    private readonly List<Node> _spill = [];
    private Node? _root; // null while the tree is empty (see "Shape")

    public ExtentTree(int capacity) => _capacity = capacity;

    /// <summary>Appends, in order, every extent that overlaps blocks [<paramref name="from"/>, <paramref name="to"/>).</summary>
    public void CollectOverlapping(long from, long to, List<Extent> into)
    {
        if (_root is not null)
        {
            Collect(_root, from, to, into);
        }
    }

    /// <summary>Appends, in order, every uncommitted extent.</summary>
    public void CollectUncommitted(List<Extent> into)
    {
        if (_root is not null)
        {
            CollectUncommitted(_root, into);
        }
    }

    /// <summary>
    /// Removes every extent whose start lies in [<paramref name="lo"/>, <paramref name="hi"/>)
    /// and inserts <paramref name="with"/>: sorted, starting in [lo, hi), and overlapping
    /// nothing outside that was kept.
    /// </summary>
    public void Replace(long lo, long hi, ReadOnlySpan<Extent> with)
    {
        if (_root is null && with.IsEmpty)
        {
            return;
        }

        var root = _root ??= new Leaf(_capacity);
        Splice(root, lo, hi, with, _spill);
        if (_spill.Count > 0)
        {
            GrowRoot(root);
        }

        while (_root is Branch { Count: <= 1 } branch)
        {
            _root = branch.Count == 1 ? branch.Items[0].Node : null;
        }

        if (_root is Leaf { Count: 0 })
        {
            _root = null;
        }
    }

    public void Clear() => _root = null;

    /// <summary>Every extent in order. The tree must not change while this is enumerated.</summary>
    public IEnumerable<Extent> InOrder()
    {
        if (_root is null)
        {
            yield break;
        }

        var path = new Stack<(Branch Branch, int Next)>();
        Node node = _root;
        while (true)
        {
            while (node is Branch branch)
            {
                path.Push((branch, 1));
                node = branch.Items[0].Node;
            }

            var leaf = (Leaf)node;
            for (int i = 0; i < leaf.Count; i++)
            {
                yield return leaf.Items[i];
            }

            while (path.Count > 0 && path.Peek().Next == path.Peek().Branch.Count)
            {
                path.Pop();
            }

            if (path.Count == 0)
            {
                yield break;
            }

            var (parent, next) = path.Pop();
            path.Push((parent, next + 1));
            node = parent.Items[next].Node;
        }
    }

    /// <summary>
    /// Checks the shape invariants (fill, exact keys, equal depth, cleared slots, uncommitted
    /// counts) and throws <see cref="InvalidOperationException"/> naming the first broken one.
    /// </summary>
    public void Validate()
    {
        if (_root is null)
        {
            return;
        }

        if (_root is Branch { Count: < 2 })
        {
            throw new InvalidOperationException("The root is a branch with fewer than two children.");
        }

        int leafDepth = -1;
        ValidateNode(_root, isRoot: true, depth: 0, ref leafDepth);
    }

    private static void Collect(Node node, long from, long to, List<Extent> into)
    {
        if (node is Branch branch)
        {
            for (int i = branch.Route(from); i < branch.Count && branch.Items[i].Key < to; i++)
            {
                Collect(branch.Items[i].Node, from, to, into);
            }

            return;
        }

        var leaf = (Leaf)node;
        for (int i = Math.Max(leaf.LowerBound(from + 1) - 1, 0); i < leaf.Count && leaf.Items[i].Start < to; i++)
        {
            if (leaf.Items[i].End > from)
            {
                into.Add(leaf.Items[i]);
            }
        }
    }

    private static void CollectUncommitted(Node node, List<Extent> into)
    {
        if (node.Uncommitted == 0)
        {
            return;
        }

        if (node is Branch branch)
        {
            foreach (var slot in branch.Live)
            {
                CollectUncommitted(slot.Node, into);
            }

            return;
        }

        foreach (var extent in ((Leaf)node).Live)
        {
            if (!extent.Committed)
            {
                into.Add(extent);
            }
        }
    }

    /// <summary>
    /// <see cref="Replace"/> below <paramref name="node"/>, which is changed in place (possibly
    /// emptied or left below half full, for the caller to fix); new right siblings it needs are
    /// appended to <paramref name="spill"/>, which must be empty on entry.
    /// </summary>
    private static void Splice(Node node, long lo, long hi, ReadOnlySpan<Extent> with, List<Node> spill)
    {
        if (node is Branch branch)
        {
            SpliceBranch(branch, lo, hi, with, spill);
        }
        else
        {
            SpliceLeaf((Leaf)node, lo, hi, with, spill);
        }
    }

    private static void SpliceLeaf(Leaf leaf, long lo, long hi, ReadOnlySpan<Extent> with, List<Node> spill)
    {
        int first = leaf.LowerBound(lo), end = leaf.LowerBound(hi);
        int count = leaf.Count - (end - first) + with.Length;
        var items = leaf.Items.AsSpan();
        if (count <= items.Length)
        {
            items[end..leaf.Count].CopyTo(items[(first + with.Length)..]);
            with.CopyTo(items[first..]);
            leaf.Count = count;
            leaf.Refresh();
            return;
        }

        var all = new Extent[count];
        items[..first].CopyTo(all);
        with.CopyTo(all.AsSpan(first));
        items[end..leaf.Count].CopyTo(all.AsSpan(first + with.Length));
        Pack(all, leaf, spill);
    }

    private static void SpliceBranch(Branch branch, long lo, long hi, ReadOnlySpan<Extent> with, List<Node> spill)
    {
        int first = branch.Route(lo), last = branch.Route(hi - 1);
        var left = branch.Items[first].Node;
        int leftUncommitted = left.Uncommitted;
        Splice(left, lo, hi, with, spill);
        if (first == last && spill.Count == 0 && !left.IsUnderfull)
        {
            // Adjusting by the child's change, rather than summing every child, keeps the
            // common path from touching the other children's nodes.
            branch.Items[first] = new Slot(left);
            branch.Uncommitted += left.Uncommitted - leftUncommitted;
            return;
        }

        // The slow path (a split, a join, or a range across children) rebuilds this branch's
        // child list: those before the range, what the cut children became, those after it.
        var children = new List<Node>(branch.Count + spill.Count + 1);
        for (int i = 0; i < first; i++)
        {
            children.Add(branch.Items[i].Node);
        }

        AddIfNotEmpty(children, left);
        children.AddRange(spill);
        spill.Clear();
        if (last != first)
        {
            var right = branch.Items[last].Node;
            Splice(right, lo, hi, [], spill);
            AddIfNotEmpty(children, right);
            children.AddRange(spill);
            spill.Clear();
        }

        for (int i = last + 1; i < branch.Count; i++)
        {
            children.Add(branch.Items[i].Node);
        }

        JoinUnderfull(children);
        Pack(Slot.For(children), branch, spill);
    }

    private static void AddIfNotEmpty(List<Node> nodes, Node node)
    {
        if (node.Count > 0)
        {
            nodes.Add(node);
        }
    }

    /// <summary>
    /// Joins each node of a sibling sequence that is below half full with a neighbour, until
    /// none is or only one node is left.
    /// </summary>
    private static void JoinUnderfull(List<Node> siblings)
    {
        for (int i = 0; i < siblings.Count && siblings.Count > 1;)
        {
            if (!siblings[i].IsUnderfull)
            {
                i++;
                continue;
            }

            int pair = Math.Max(i - 1, 0);
            var joined = Join(siblings[pair], siblings[pair + 1]);
            siblings.RemoveRange(pair, 2);
            siblings.InsertRange(pair, joined);
            i = pair;
        }
    }

    /// <summary>
    /// Joins two adjacent nodes of one level into one node, or two evenly filled ones when
    /// their items do not fit in one. Every node below the result is at least half full.
    /// </summary>
    private static List<Node> Join(Node left, Node right)
    {
        var result = new List<Node>(2) { left };
        if (left is Leaf leftLeaf)
        {
            Pack([.. leftLeaf.Live, .. ((Leaf)right).Live], leftLeaf, result);
            return result;
        }

        var leftBranch = (Branch)left;
        var children = new List<Node>(leftBranch.Count + right.Count);
        foreach (var slot in leftBranch.Live)
        {
            children.Add(slot.Node);
        }

        foreach (var slot in ((Branch)right).Live)
        {
            children.Add(slot.Node);
        }

        JoinUnderfull(children);
        Pack(Slot.For(children), leftBranch, result);
        return result;
    }

    /// <summary>
    /// Fills <paramref name="first"/> with <paramref name="items"/> or, when they do not fit,
    /// spreads them evenly over it and as many new nodes as needed, appended to
    /// <paramref name="spill"/>. Even spreading of more than one node's worth leaves each at
    /// least half full.
    /// </summary>
    private static void Pack<T>(ReadOnlySpan<T> items, Node<T> first, List<Node> spill)
        where T : struct
    {
        int capacity = first.Items.Length;
        int pieces = Math.Max((items.Length + capacity - 1) / capacity, 1);
        for (int remaining = pieces; remaining > 0; remaining--)
        {
            int size = items.Length / remaining;
            var node = remaining == pieces ? first : first.CreateSibling();
            node.Fill(items[..size]);
            items = items[size..];
            if (node != first)
            {
                spill.Add(node);
            }
        }
    }

    private void GrowRoot(Node root)
    {
        var level = new List<Node>(_spill.Count + 1) { root };
        level.AddRange(_spill);
        _spill.Clear();
        while (level.Count > 1)
        {
            var parent = new Branch(_capacity);
            var parents = new List<Node> { parent };
            Pack(Slot.For(level), parent, parents);
            level = parents;
        }

        _root = level[0];
    }

    private static void ValidateNode(Node node, bool isRoot, int depth, ref int leafDepth)
    {
        if (!isRoot && node.IsUnderfull)
        {
            throw new InvalidOperationException($"A node at depth {depth} holds {node.Count} items, below half full.");
        }

        if (node is Leaf leaf)
        {
            if (leafDepth >= 0 && leafDepth != depth)
            {
                throw new InvalidOperationException($"Leaves at depths {leafDepth} and {depth}.");
            }

            leafDepth = depth;
            if (node.Uncommitted != leaf.CountUncommitted())
            {
                throw new InvalidOperationException($"A leaf at depth {depth} has a wrong uncommitted count.");
            }

            return;
        }

        var branch = (Branch)node;
        for (int i = 0; i < branch.Items.Length; i++)
        {
            var slot = branch.Items[i];
            if (i >= branch.Count)
            {
                if (slot.Node is not null)
                {
                    throw new InvalidOperationException($"A branch at depth {depth} keeps a child in unused slot {i}.");
                }

                continue;
            }

            if (slot.Node.Count == 0 || slot.Key != slot.Node.MinKey)
            {
                throw new InvalidOperationException($"A branch at depth {depth} has a wrong key or an empty child in slot {i}.");
            }

            ValidateNode(slot.Node, isRoot: false, depth + 1, ref leafDepth);
        }

        if (node.Uncommitted != branch.SumUncommitted())
        {
            throw new InvalidOperationException($"A branch at depth {depth} has a wrong uncommitted count.");
        }
    }
}
