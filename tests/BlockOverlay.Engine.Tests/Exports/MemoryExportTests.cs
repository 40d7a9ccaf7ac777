using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Tests.Exports;

public sealed class MemoryExportTests
{
    private const int Page = MemoryExport.PageSize;
    private const ExtentState HoleZero = ExtentState.Hole | ExtentState.Zero;

    [Test]
    public async Task A_one_TiB_disk_costs_memory_only_for_what_is_written()
    {
        const long Size = 1L << 40;
        await using var export = new MemoryExport(Size);
        byte[] data = RandomBytes(4096, seed: 1);

        await export.WriteAsync(Size - 4096, data, WriteFlags.None);

        byte[] back = new byte[4096];
        await export.ReadAsync(Size - 4096, back);
        byte[] start = new byte[4096];
        await export.ReadAsync(0, start);
        var extents = new List<Extent>();
        await export.GetAllocationAsync(0, Size, 16, extents);
        Assert.Multiple(() =>
        {
            Assert.That(back, Is.EqualTo(data));
            Assert.That(start, Is.All.EqualTo(0));
            Assert.That(export.AllocatedBytes, Is.EqualTo(Page));
            Assert.That(extents, Is.EqualTo(new[] { new Extent(Size - Page, HoleZero), new Extent(Page, ExtentState.Data) }));
        });
    }

    [Test]
    public async Task The_largest_size_works_at_both_ends()
    {
        await using var export = new MemoryExport(long.MaxValue);

        await export.WriteAsync(long.MaxValue - 3, new byte[] { 1, 2, 3 }, WriteFlags.None);
        await export.WriteAsync(0, new byte[] { 4 }, WriteFlags.None);

        byte[] back = new byte[3];
        await export.ReadAsync(long.MaxValue - 3, back);
        var extents = new List<Extent>();
        await export.GetAllocationAsync(Page, long.MaxValue - Page, 16, extents);
        Assert.Multiple(() =>
        {
            Assert.That(back, Is.EqualTo(new byte[] { 1, 2, 3 }));
            Assert.That(export.AllocatedBytes, Is.EqualTo(2 * Page));
            Assert.That(extents.Select(e => e.State), Is.EqualTo(new[] { HoleZero, ExtentState.Data }));
            Assert.That(extents.Sum(e => e.Length), Is.EqualTo(long.MaxValue - Page));
        });
    }

    [Test]
    public async Task Trimming_a_huge_sparse_disk_skips_its_empty_parts()
    {
        // 2^32 pages: visiting each would take minutes; skipping empty subtrees, microseconds.
        const long Size = 256L << 40;
        await using var export = new MemoryExport(Size);
        await export.WriteAsync(Size / 3, new byte[] { 1 }, WriteFlags.None);
        await export.WriteAsync(Size - 1, new byte[] { 1 }, WriteFlags.None);
        var clock = System.Diagnostics.Stopwatch.StartNew();

        await export.TrimAsync(0, Size, WriteFlags.None);

        Assert.Multiple(() =>
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
            Assert.That(export.AllocatedBytes, Is.Zero);
        });
    }

    [Test]
    public async Task A_write_allocates_every_page_it_touches_and_no_other()
    {
        await using var export = new MemoryExport(16L * Page);

        await export.WriteAsync(Page - 1, new byte[Page + 2], WriteFlags.None);

        Assert.That(export.AllocatedBytes, Is.EqualTo(3L * Page));
    }

    [Test]
    public async Task Trim_frees_whole_pages_and_keeps_partial_ones()
    {
        await using var export = new MemoryExport(16L * Page);
        await export.WriteAsync(0, new byte[4 * Page], WriteFlags.None);

        await export.TrimAsync(Page / 2, 2 * Page, WriteFlags.None);

        Assert.That(export.AllocatedBytes, Is.EqualTo(3L * Page));
    }

    [Test]
    public async Task Zero_with_NoHole_keeps_written_pages_allocated_and_holes_empty()
    {
        await using var export = new MemoryExport(16L * Page);
        await export.WriteAsync(0, Filled(2 * Page, 3), WriteFlags.None);

        await export.ZeroAsync(0, 4 * Page, ZeroFlags.NoHole);

        byte[] back = new byte[2 * Page];
        await export.ReadAsync(0, back);
        var extents = new List<Extent>();
        await export.GetAllocationAsync(0, 4 * Page, 8, extents);
        Assert.Multiple(() =>
        {
            Assert.That(back, Is.All.EqualTo(0));
            Assert.That(export.AllocatedBytes, Is.EqualTo(2L * Page));
            Assert.That(extents, Is.EqualTo(new[] { new Extent(2 * Page, ExtentState.Data), new Extent(2 * Page, HoleZero) }));
        });
    }

    [Test]
    public async Task Zero_without_NoHole_frees_the_pages()
    {
        await using var export = new MemoryExport(16L * Page);
        await export.WriteAsync(0, Filled(2 * Page, 3), WriteFlags.None);

        await export.ZeroAsync(0, 2 * Page, ZeroFlags.FastZero);

        Assert.That(export.AllocatedBytes, Is.Zero);
    }

    [Test]
    public async Task A_disk_whose_size_is_not_a_page_multiple_serves_its_last_bytes()
    {
        const long Size = 3L * Page + 100;
        await using var export = new MemoryExport(Size);

        await export.WriteAsync(Size - 100, Filled(100, 8), WriteFlags.None);
        var extents = new List<Extent>();
        await export.GetAllocationAsync(0, Size, 8, extents);

        Assert.That(extents, Is.EqualTo(new[] { new Extent(3L * Page, HoleZero), new Extent(100, ExtentState.Data) }));
    }

    [Test]
    public async Task Page_accounting_matches_the_table_after_racing_writes_trims_and_zeros()
    {
        // Few pages and many operations, so that removals of one page often race.
        const int Pages = 2;
        await using var export = new MemoryExport(Pages * (long)Page);

        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            for (int i = 0; i < 50_000; i++)
            {
                long offset = random.Next(Pages) * (long)Page;
                switch (random.Next(3))
                {
                    case 0:
                        await export.WriteAsync(offset, new byte[] { 1 }, WriteFlags.None);
                        break;
                    case 1:
                        await export.TrimAsync(offset, Page, WriteFlags.None);
                        break;
                    default:
                        await export.ZeroAsync(0, Pages * (long)Page, ZeroFlags.None);
                        break;
                }
            }
        })));

        var extents = new List<Extent>();
        await export.GetAllocationAsync(0, export.Size, Pages, extents);
        long dataBytes = extents.Where(e => e.State == ExtentState.Data).Sum(e => e.Length);
        Assert.That(export.AllocatedBytes, Is.EqualTo(dataBytes));
    }

    [Test]
    public async Task Zero_with_FastZero_is_always_advertised_and_never_refused()
    {
        await using var export = new MemoryExport(Page);

        Assert.Multiple(() =>
        {
            Assert.That(export.Capabilities.HasFlag(ExportCapabilities.FastZero), Is.True);
            Assert.That(async () => await export.ZeroAsync(0, Page, ZeroFlags.FastZero | ZeroFlags.NoHole), Throws.Nothing);
        });
    }

    [Test]
    public void A_negative_size_is_refused() =>
        Assert.That(() => new MemoryExport(-1), Throws.InstanceOf<ArgumentOutOfRangeException>());

    [Test]
    public async Task Dispose_releases_the_pages()
    {
        var export = new MemoryExport(4L * Page);
        await export.WriteAsync(0, new byte[Page], WriteFlags.None);

        await export.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(export.AllocatedBytes, Is.Zero);
            Assert.That(async () => await export.WriteAsync(0, new byte[1], WriteFlags.None), Throws.InstanceOf<ObjectDisposedException>());
        });
    }

    private static byte[] Filled(int length, byte value)
    {
        byte[] bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        return bytes;
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        byte[] bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
