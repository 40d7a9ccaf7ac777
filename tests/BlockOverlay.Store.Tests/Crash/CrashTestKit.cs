using System.Buffers.Binary;
using System.Text;
using BlockOverlay.Io;
using BlockOverlay.Store.Checking;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// Self-describing block contents: every block the crash tests write says which instance,
/// which virtual block and which write (a serial unique in the test) it is, and the rest of
/// the block is a pattern derived from those three, so a read tells exactly what it got —
/// one of ours (and which), another instance's, or garbage.
/// </summary>
/// <remarks>
/// Values a block can have in the models: <see cref="Base"/> (falls through to the base
/// image), <see cref="Zero"/> (reads as zeros), or a positive write serial.
/// </remarks>
internal static class BlockContent
{
    public const int Size = UpperStore.BlockSize;
    public const long Base = 0;
    public const long Zero = -1;

    /// <summary>u32 instance id, u32 virtual block, u64 serial, then a pattern of all three.</summary>
    public static void Fill(Span<byte> block, uint instance, long virtualBlock, long serial)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(block, instance);
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], (uint)virtualBlock);
        BinaryPrimitives.WriteInt64LittleEndian(block[8..], serial);
        ulong state = Seed(instance, virtualBlock, serial);
        for (int i = 16; i < Size; i += 8)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(block[i..], Next(ref state));
        }
    }

    public static byte[] Make(uint instance, long virtualBlock, long serial)
    {
        var block = new byte[Size];
        Fill(block, instance, virtualBlock, serial);
        return block;
    }

    public static string Describe(long value) => value switch
    {
        Base => "base",
        Zero => "zeros",
        _ => $"write #{value}",
    };

    /// <summary>
    /// What a block read from <paramref name="instance"/> at <paramref name="virtualBlock"/>
    /// is, given how the store's layout described it. Null, with the reason, when it is not
    /// a value this instance's block can ever legitimately have.
    /// </summary>
    public static long? Identify(ReadOnlySpan<byte> block, ExtentKind kind, uint instance, long virtualBlock, out string? problem)
    {
        problem = null;
        switch (kind)
        {
            case ExtentKind.Base:
                return Base;
            case ExtentKind.Zero:
                return Zero;
        }

        uint owner = BinaryPrimitives.ReadUInt32LittleEndian(block);
        uint where = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
        long serial = BinaryPrimitives.ReadInt64LittleEndian(block[8..]);
        if (!block.ContainsAnyExcept((byte)0))
        {
            problem = "an upper block that holds only zeros (a mapping to a block never written)";
            return null;
        }

        ulong state = Seed(owner, where, serial);
        for (int i = 16; i < Size; i += 8)
        {
            if (BinaryPrimitives.ReadUInt64LittleEndian(block[i..]) != Next(ref state))
            {
                problem = $"garbage (header says instance {owner}, block {where}, write #{serial}, but byte {i} onwards does not match)";
                return null;
            }
        }

        if (owner != instance)
        {
            problem = $"ANOTHER INSTANCE's data: instance {owner}'s block {where}, write #{serial}";
            return null;
        }

        if (where != (uint)virtualBlock)
        {
            problem = $"this instance's block {where} (write #{serial}) shown at block {virtualBlock}";
            return null;
        }

        return serial;
    }

    private static ulong Seed(uint instance, long virtualBlock, long serial) =>
        ((ulong)serial * 0x9E3779B97F4A7C15UL) ^ ((ulong)instance << 48) ^ (ulong)virtualBlock ^ 0xD1B54A32D192ED03UL;

    private static ulong Next(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// The model of one instance: what every block must read now (<see cref="Current"/>), what it
/// read at the instance's last durable point (commit, checkpoint, clean close) and which values
/// it took since (after a crash a block reads as its durable value or one of those).
/// </summary>
internal sealed class InstanceModel
{
    private readonly List<long>?[] _since;

    public InstanceModel(string name, uint id, long blocks)
    {
        Name = name;
        Id = id;
        Blocks = blocks;
        Current = new long[blocks];
        Durable = new long[blocks];
        _since = new List<long>?[blocks];
    }

    private InstanceModel(InstanceModel other)
    {
        Name = other.Name;
        Id = other.Id;
        Blocks = other.Blocks;
        Current = (long[])other.Current.Clone();
        Durable = (long[])other.Durable.Clone();
        _since = [.. other._since.Select(s => s is null ? null : new List<long>(s))];
    }

    public string Name { get; }

    public uint Id { get; }

    public long Blocks { get; }

    public long[] Current { get; }

    public long[] Durable { get; }

    public void Set(long block, long value)
    {
        Current[block] = value;
        (_since[block] ??= []).Add(value);
    }

    /// <summary>A commit, checkpoint or clean close completed: the current state is durable.</summary>
    public void MakeDurable()
    {
        Current.CopyTo(Durable, 0);
        Array.Clear(_since);
    }

    /// <summary>After recovery: what was read is the new durable and current state.</summary>
    public void Recovered(long[] read)
    {
        read.CopyTo(Current, 0);
        MakeDurable();
    }

    public bool MayReadAfterCrash(long block, long value) => value == Durable[block] || _since[block]?.Contains(value) == true;

    public string AllowedAfterCrash(long block) =>
        string.Join(" or ", new[] { Durable[block] }.Concat(_since[block] ?? []).Distinct().Select(BlockContent.Describe));

    public InstanceModel Clone() => new(this);
}

/// <summary>Helpers shared by the crash tests: formatting, reading, structure walks, invariant checks.</summary>
internal static class CrashTestKit
{
    public const int Block = UpperStore.BlockSize;

    public static async Task<MemoryDevice> NewStoreAsync(long dataBlocks, long journalBlocks)
    {
        var device = new MemoryDevice((2 + journalBlocks + dataBlocks) * Block);
        await UpperStore.CreateAsync(device, new StoreCreateOptions { JournalBlocks = journalBlocks });
        return device;
    }

    /// <summary>Writes <paramref name="count"/> self-describing blocks; serials are <paramref name="firstSerial"/> onwards.</summary>
    public static byte[] Blocks(uint instance, long virtualBlock, int count, long firstSerial)
    {
        var data = new byte[count * Block];
        for (int i = 0; i < count; i++)
        {
            BlockContent.Fill(data.AsSpan(i * Block, Block), instance, virtualBlock + i, firstSerial + i);
        }

        return data;
    }

    /// <summary>
    /// Reads a range and identifies every block. A block that is no legitimate value of this
    /// instance (garbage, another instance's) fails the test with <paramref name="context"/>.
    /// </summary>
    public static async Task<long[]> ReadValuesAsync(UpperStore store, StoreInstance instance, long first, int count, string context)
    {
        var data = new byte[count * Block];
        var layout = new List<MappedExtent>();
        await store.ReadAsync(instance, first, data, layout);
        var kinds = new ExtentKind[count];
        long covered = 0;
        foreach (var e in layout)
        {
            for (long b = e.VirtualBlock; b < e.End; b++)
            {
                kinds[b - first] = e.Kind;
                covered++;
            }
        }

        if (covered != count)
        {
            Assert.Fail($"{context}: the layout of {instance.Name} blocks {first}+{count} covers {covered} blocks: {string.Join(", ", layout)}");
        }

        var values = new long[count];
        for (int i = 0; i < count; i++)
        {
            var value = BlockContent.Identify(data.AsSpan(i * Block, Block), kinds[i], instance.Definition.Id, first + i, out var problem);
            if (value is null)
            {
                Assert.Fail($"{context}: instance '{instance.Name}' (id {instance.Definition.Id}) block {first + i} reads as {problem}");
            }

            values[i] = value!.Value;
        }

        return values;
    }

    public static Task<long[]> ReadAllAsync(UpperStore store, StoreInstance instance, string context) =>
        ReadValuesAsync(store, instance, 0, (int)instance.Blocks, context);

    /// <summary>The newer valid superblock copy on the device (what the store uses).</summary>
    public static async Task<Superblock> ReadSuperblockAsync(IBlockDevice device)
    {
        using var buffer = new AlignedBuffer(Block);
        Superblock? best = null;
        for (int copy = 0; copy < 2; copy++)
        {
            await device.ReadAsync(copy * Block, buffer.Memory);
            try
            {
                var sb = Superblock.Decode(buffer.Span, $"copy {copy}", device.Size / Block);
                if (best is null || sb.Generation > best.Generation)
                {
                    best = sb;
                }
            }
            catch (StoreFormatException)
            {
            }
        }

        return best ?? throw new InvalidOperationException("no valid superblock on the device");
    }

    /// <summary>
    /// Free space is consistent: every instance's upper blocks lie in the data region, outside
    /// the checkpoint's parts, no store block is mapped twice (by two instances or one), and the store's
    /// free count is exactly what no map and no checkpoint part names (nothing leaked, nothing
    /// counted free that is in use). The last needs every instance committed (no pending frees).
    /// It loads every map (loading frees and takes nothing), so the count recovery made from the
    /// space record and the maps it loaded is checked against every map.
    /// </summary>
    public static async Task CheckSpaceAsync(UpperStore store, IBlockDevice device, string context, bool exactFreeCount)
    {
        var sb = await ReadSuperblockAsync(device);
        var runs = new List<(long Start, long Length, string Owner)>();
        var layout = new List<MappedExtent>();
        foreach (var instance in store.Instances)
        {
            await store.LoadAsync(instance); // loading changes no free space: what recovery counted is checked here
            layout.Clear();
            store.Lookup(instance, 0, instance.Blocks, layout);
            runs.AddRange(layout.Where(e => e.Kind == ExtentKind.Upper)
                .Select(e => (e.StoreBlock, e.Length, $"'{instance.Name}' blocks {e.VirtualBlock}+{e.Length}")));
        }

        runs.AddRange(store.CheckpointRuns.Select(r => (r.Start, r.Length, "a checkpoint part")));

        runs.Sort((a, b) => a.Start.CompareTo(b.Start));
        for (int i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            if (r.Start < sb.DataStart || r.Start + r.Length > sb.DeviceBlocks)
            {
                Assert.Fail($"{context}: {r.Owner} at store blocks {r.Start}+{r.Length} lie outside the data region [{sb.DataStart}, {sb.DeviceBlocks})");
            }

            if (i > 0 && runs[i - 1].Start + runs[i - 1].Length > r.Start)
            {
                var p = runs[i - 1];
                Assert.Fail($"{context}: store blocks mapped twice: {p.Owner} at {p.Start}+{p.Length} and {r.Owner} at {r.Start}+{r.Length}");
            }
        }

        if (exactFreeCount)
        {
            long used = runs.Sum(r => r.Length);
            long expected = sb.DeviceBlocks - sb.DataStart - used;
            if (store.FreeBlocks != expected)
            {
                Assert.Fail($"{context}: the store counts {store.FreeBlocks} free blocks; the data region has {sb.DeviceBlocks - sb.DataStart}, " +
                            $"maps and the checkpoint use {used}, so {expected} should be free ({(store.FreeBlocks < expected ? "leaked" : "counted free while in use")})");
            }
        }
    }

    /// <summary>Fails, showing the report, unless the store on <paramref name="device"/> checks clean (<see cref="StoreChecker"/>).</summary>
    public static async Task AssertChecksCleanAsync(IBlockDevice device, string context)
    {
        var report = await StoreChecker.CheckAsync(device);
        if (!report.Clean)
        {
            Assert.Fail($"store check {context} found problems:\n{Describe(report)}");
        }
    }

    /// <summary>A check's report as a failure message shows it: each class with its count and examples, then the notes.</summary>
    public static string Describe(CheckReport report) =>
        string.Join("\n", report.Problems.Select(p => $"{p.Count} x {p.Class.Title}: {string.Join(" | ", p.Examples)}")
            .Concat(report.Notes.Select(n => $"note: {n}")));

    /// <summary>Seeds for a run: BLOCKOVERLAY_CRASH_SEED pins one, else <paramref name="first"/> onwards.</summary>
    public static IEnumerable<int> Seeds(int first)
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("BLOCKOVERLAY_CRASH_SEED"), out int pinned))
        {
            yield return pinned;
            yield break;
        }

        for (int seed = first; ; seed++)
        {
            yield return seed;
        }
    }

    public static long EnvironmentCount(string name, long fallback) =>
        long.TryParse(Environment.GetEnvironmentVariable(name), out long value) && value > 0 ? value : fallback;

    /// <summary>
    /// Says something in the test output, and in the file tests/run-all names in
    /// BLOCKOVERLAY_TEST_REPORT, whose lines it prints above the closing line of make test
    /// (dotnet test's quiet console shows no test output).
    /// </summary>
    public static void Report(string line)
    {
        TestContext.Out.WriteLine(line);
        if (Environment.GetEnvironmentVariable("BLOCKOVERLAY_TEST_REPORT") is { Length: > 0 } report)
        {
            File.AppendAllText(report, line + Environment.NewLine);
        }
    }

    public static string Trail(IEnumerable<string> steps, int last = 12)
    {
        var list = steps.ToList();
        var text = new StringBuilder();
        text.Append("last steps:");
        foreach (var s in list.Skip(Math.Max(0, list.Count - last)))
        {
            text.Append("\n    ").Append(s);
        }

        return text.ToString();
    }
}
