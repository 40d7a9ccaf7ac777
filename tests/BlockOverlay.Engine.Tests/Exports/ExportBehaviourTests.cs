using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Tests.Exports;

/// <summary>
/// Behaviour every export must show, run over each implementation. Offsets used for block
/// status are multiples of 64 KiB, a multiple of every implementation's granularity (memory
/// pages, file system blocks).
/// </summary>
public abstract class ExportBehaviourTests
{
    protected const long DiskSize = 4L << 20;
    protected const int Block = 64 << 10;
    private const ExtentState HoleZero = ExtentState.Hole | ExtentState.Zero;

    private IExport? _export;

    protected IExport Export => _export ?? throw new InvalidOperationException("No export: SetUp did not run.");

    /// <summary>Creates an all-zeros writable export of <paramref name="size"/> bytes.</summary>
    protected abstract ValueTask<IExport> CreateAsync(long size);

    [SetUp]
    public async Task CreateExport() => _export = await CreateAsync(DiskSize);

    [TearDown]
    public async Task DisposeExport()
    {
        if (_export is not null)
        {
            await _export.DisposeAsync();
            _export = null;
        }

        CleanUp();
    }

    /// <summary>Removes what <see cref="CreateAsync"/> left behind, after the export is disposed.</summary>
    protected virtual void CleanUp()
    {
    }

    [Test]
    public void Size_is_the_requested_size() => Assert.That(Export.Size, Is.EqualTo(DiskSize));

    [Test]
    public void Capabilities_allow_writing_flush_trim_fast_zero_and_multi_conn()
    {
        Assert.That(Export.Capabilities, Is.EqualTo(
            ExportCapabilities.Flush | ExportCapabilities.Trim | ExportCapabilities.FastZero |
            ExportCapabilities.Cache | ExportCapabilities.MultiConn));
    }

    [Test]
    public async Task Reading_never_written_space_gives_zeros()
    {
        byte[] buffer = Filled(3 * Block + 17, 0xAA);

        await Export.ReadAsync(Block - 5, buffer);

        Assert.That(buffer, Is.All.EqualTo(0));
    }

    [TestCase(0L, 1)]
    [TestCase(1L, 511)]
    [TestCase(Block - 1000L, 2 * Block + 3000)]
    [TestCase(3L * Block + 12345, Block)]
    [TestCase(DiskSize - 700, 700)]
    public async Task A_write_reads_back_exactly_and_leaves_its_neighbours_zero(long offset, int length)
    {
        byte[] data = RandomBytes(length, seed: (int)offset);

        await Export.WriteAsync(offset, data, WriteFlags.None);

        long from = Math.Max(0, offset - 1000);
        long to = Math.Min(DiskSize, offset + length + 1000);
        byte[] back = new byte[to - from];
        await Export.ReadAsync(from, back);
        Assert.Multiple(() =>
        {
            Assert.That(back.AsSpan((int)(offset - from), length).ToArray(), Is.EqualTo(data));
            Assert.That(back.AsSpan(0, (int)(offset - from)).ToArray(), Is.All.EqualTo(0));
            Assert.That(back.AsSpan((int)(offset - from) + length).ToArray(), Is.All.EqualTo(0));
        });
    }

    [Test]
    public async Task Overwriting_part_of_a_write_keeps_the_rest()
    {
        await Export.WriteAsync(Block - 100, Filled(300, 1), WriteFlags.None);
        await Export.WriteAsync(Block - 50, Filled(100, 2), WriteFlags.None);

        byte[] back = new byte[300];
        await Export.ReadAsync(Block - 100, back);

        byte[] expected = [.. Filled(50, 1), .. Filled(100, 2), .. Filled(150, 1)];
        Assert.That(back, Is.EqualTo(expected));
    }

    [Test]
    public async Task Trim_makes_the_range_read_as_zeros_and_spares_its_neighbours()
    {
        await Export.WriteAsync(0, Filled(4 * Block, 7), WriteFlags.None);

        await Export.TrimAsync(Block / 2, 2 * Block, WriteFlags.None);

        byte[] back = new byte[4 * Block];
        await Export.ReadAsync(0, back);
        Assert.Multiple(() =>
        {
            Assert.That(back[..(Block / 2)], Is.All.EqualTo(7));
            Assert.That(back[(Block / 2)..(5 * Block / 2)], Is.All.EqualTo(0));
            Assert.That(back[(5 * Block / 2)..], Is.All.EqualTo(7));
        });
    }

    [TestCase(ZeroFlags.None)]
    [TestCase(ZeroFlags.NoHole)]
    [TestCase(ZeroFlags.FastZero)]
    [TestCase(ZeroFlags.NoHole | ZeroFlags.FastZero | ZeroFlags.Fua)]
    public async Task Zero_makes_the_range_read_as_zeros_and_spares_its_neighbours(ZeroFlags flags)
    {
        await Export.WriteAsync(0, Filled(4 * Block, 9), WriteFlags.None);

        byte[] back = new byte[4 * Block];
        try
        {
            await Export.ZeroAsync(Block - 3, 2 * Block + 6, flags);
        }
        catch (ExportException e) when (e.Error == ExportError.NotSupported && flags.HasFlag(ZeroFlags.FastZero))
        {
            // A zero that cannot be fast may be refused, but then it must have changed nothing.
            await Export.ReadAsync(0, back);
            Assert.That(back, Is.All.EqualTo(9));
            return;
        }

        await Export.ReadAsync(0, back);
        Assert.Multiple(() =>
        {
            Assert.That(back[..(Block - 3)], Is.All.EqualTo(9));
            Assert.That(back[(Block - 3)..(3 * Block + 3)], Is.All.EqualTo(0));
            Assert.That(back[(3 * Block + 3)..], Is.All.EqualTo(9));
        });
    }

    [Test]
    public async Task Zero_without_NoHole_leaves_a_hole()
    {
        await Export.WriteAsync(0, Filled(3 * Block, 5), WriteFlags.None);

        await Export.ZeroAsync(Block, Block, ZeroFlags.None);

        Assert.That(await AllocationAsync(0, 3 * Block), Is.EqualTo(new[]
        {
            new Extent(Block, ExtentState.Data),
            new Extent(Block, HoleZero),
            new Extent(Block, ExtentState.Data),
        }));
    }

    [Test]
    public async Task Trim_leaves_a_hole()
    {
        await Export.WriteAsync(0, Filled(3 * Block, 5), WriteFlags.None);

        await Export.TrimAsync(Block, Block, WriteFlags.None);

        Assert.That(await AllocationAsync(0, 3 * Block), Is.EqualTo(new[]
        {
            new Extent(Block, ExtentState.Data),
            new Extent(Block, HoleZero),
            new Extent(Block, ExtentState.Data),
        }));
    }

    [Test]
    public async Task A_new_disk_is_one_hole()
    {
        Assert.That(await AllocationAsync(0, DiskSize), Is.EqualTo(new[] { new Extent(DiskSize, HoleZero) }));
    }

    [Test]
    public async Task Allocation_merges_runs_and_is_reported_from_the_offset_asked()
    {
        await Export.WriteAsync(2 * Block, Filled(2 * Block, 1), WriteFlags.None);
        await Export.WriteAsync(6 * Block, Filled(Block, 1), WriteFlags.None);

        long offset = 2 * Block + 3000;
        long end = 8 * Block - 100;
        Assert.That(await AllocationAsync(offset, end - offset), Is.EqualTo(new[]
        {
            new Extent(4 * Block - offset, ExtentState.Data),
            new Extent(2 * Block, HoleZero),
            new Extent(Block, ExtentState.Data),
            new Extent(end - 7 * Block, HoleZero),
        }));
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(3)]
    public async Task Allocation_stops_at_max_extents(int maxExtents)
    {
        await Export.WriteAsync(Block, Filled(Block, 1), WriteFlags.None);
        await Export.WriteAsync(3 * Block, Filled(Block, 1), WriteFlags.None);

        var expected = new[]
        {
            new Extent(Block, HoleZero),
            new Extent(Block, ExtentState.Data),
            new Extent(Block, HoleZero),
            new Extent(Block, ExtentState.Data),
            new Extent(DiskSize - 4 * Block, HoleZero),
        };
        Assert.That(await AllocationAsync(0, DiskSize, maxExtents), Is.EqualTo(expected[..maxExtents]));
    }

    [TestCase(0L)]
    [TestCase(Block + 1L)]
    [TestCase(DiskSize - 1)]
    public async Task Allocation_of_one_byte_is_one_extent_of_one_byte(long offset)
    {
        await Export.WriteAsync(Block, Filled(Block, 1), WriteFlags.None);

        List<Extent> extents = await AllocationAsync(offset, 1, maxExtents: 1);

        Assert.That(extents, Has.Count.EqualTo(1));
        Assert.That(extents[0].Length, Is.EqualTo(1));
    }

    [Test]
    public async Task Allocation_appends_after_what_the_list_already_holds()
    {
        var sentinel = new Extent(12345, HoleZero);
        var extents = new List<Extent> { sentinel };

        await Export.GetAllocationAsync(0, Block, 4, extents);

        Assert.That(extents, Is.EqualTo(new[] { sentinel, new Extent(Block, HoleZero) }));
    }

    [Test]
    public async Task Flush_fua_and_cache_complete_and_keep_the_data()
    {
        byte[] data = RandomBytes(5000, seed: 3);

        await Export.WriteAsync(Block - 2500, data, WriteFlags.Fua);
        await Export.FlushAsync();
        await Export.CacheAsync(0, DiskSize);
        await Export.TrimAsync(2 * Block, Block, WriteFlags.Fua);

        byte[] back = new byte[data.Length];
        await Export.ReadAsync(Block - 2500, back);
        Assert.That(back, Is.EqualTo(data));
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task Concurrent_writers_to_distinct_ranges_each_keep_their_last_write()
    {
        const int Writers = 8;
        const int Rounds = 40;
        const int Length = Block + 777;
        long RangeOf(int writer) => writer * (Length + 1000L) + 333;

        var last = new byte[Writers][];
        await Task.WhenAll(Enumerable.Range(0, Writers).Select(writer => Task.Run(async () =>
        {
            for (int round = 0; round < Rounds; round++)
            {
                byte[] data = RandomBytes(Length, seed: writer * 1000 + round);
                await Export.WriteAsync(RangeOf(writer), data, WriteFlags.None);
                last[writer] = data;
            }
        })));

        for (int writer = 0; writer < Writers; writer++)
        {
            byte[] back = new byte[Length];
            await Export.ReadAsync(RangeOf(writer), back);
            Assert.That(back, Is.EqualTo(last[writer]), $"writer {writer}");
        }
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task Concurrent_writes_to_one_range_never_mix_within_a_sector()
    {
        const int Writers = 4;
        const int Rounds = 100;
        const long Offset = Block - 1024;
        const int Length = 3 * Block;
        byte[][] data = [.. Enumerable.Range(1, Writers).Select(writer => Filled(Length, (byte)writer))];
        byte[] back = new byte[Length];

        for (int round = 0; round < Rounds; round++)
        {
            // Released together so the writes overlap in time as much as possible.
            var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Task[] writes = [.. data.Select(bytes => Task.Run(async () =>
            {
                await start.Task;
                await Export.WriteAsync(Offset, bytes, WriteFlags.None);
            }))];
            start.SetResult();
            await Task.WhenAll(writes);

            await Export.ReadAsync(Offset, back);
            for (int sector = 0; sector < Length / 512; sector++)
            {
                byte[] bytes = back[(sector * 512)..((sector + 1) * 512)];
                Assert.That(bytes, Is.All.EqualTo(bytes[0]), $"round {round}: sector {sector} mixes writes");
                Assert.That(bytes[0], Is.InRange(1, Writers), $"round {round}: sector {sector} holds no writer's bytes");
            }
        }
    }

    [Test]
    public async Task Operations_after_dispose_fail()
    {
        await Export.DisposeAsync();

        Assert.That(async () => await Export.ReadAsync(0, new byte[512]), Throws.InstanceOf<ObjectDisposedException>());
    }

    protected async Task<List<Extent>> AllocationAsync(long offset, long length, int maxExtents = 100)
    {
        var extents = new List<Extent>();
        await Export.GetAllocationAsync(offset, length, maxExtents, extents);
        return extents;
    }

    protected static byte[] Filled(int length, byte value)
    {
        byte[] bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        return bytes;
    }

    protected static byte[] RandomBytes(int length, int seed)
    {
        byte[] bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

[TestFixture]
public sealed class MemoryExportBehaviourTests : ExportBehaviourTests
{
    protected override ValueTask<IExport> CreateAsync(long size) => ValueTask.FromResult<IExport>(new MemoryExport(size));
}

[TestFixture]
public sealed class FileExportBehaviourTests : ExportBehaviourTests
{
    private TempDirectory _directory = null!;
    private string? _path;

    [OneTimeSetUp]
    public void CreateDirectory() => _directory = new TempDirectory();

    [OneTimeTearDown]
    public void RemoveDirectory() => _directory.Dispose();

    protected override ValueTask<IExport> CreateAsync(long size)
    {
        _path = _directory.CreateSparseFile(Guid.NewGuid().ToString("N") + ".img", size);
        return ValueTask.FromResult<IExport>(FileExport.Open(_path));
    }

    protected override void CleanUp()
    {
        if (_path is not null)
        {
            File.Delete(_path);
        }
    }
}
