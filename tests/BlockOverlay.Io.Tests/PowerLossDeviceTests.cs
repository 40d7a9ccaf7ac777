using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

/// <summary>
/// The power-loss model: what survives a crash, at sector granularity, over many seeds.
/// Each test states the content every sector may have after a crash and checks that every
/// crash lands inside that set, and — where the model promises choice — that every member of
/// the set is reached by some seed.
/// </summary>
public sealed class PowerLossDeviceTests
{
    private const int Block = TestData.Block;
    private const int Sector = PowerLossDevice.SectorSize;
    private const int Seeds = 200;

    [Test]
    public async Task Durable_writes_survive_every_crash()
    {
        var device = new PowerLossDevice(new MemoryDevice(1 << 20));
        for (var i = 0; i < 16; i++)
        {
            await TestData.WriteAsync(device, i * Block, tag: i, Block, durable: i % 2 == 0);
        }

        var lost = new List<string>();
        for (var seed = 0; seed < Seeds; seed++)
        {
            var image = device.Crash(new Random(seed));
            for (var i = 0; i < 16; i += 2)
            {
                if (!Read(image, i * Block, Block).SequenceEqual(TestData.Pattern(i, Block)))
                {
                    lost.Add($"seed {seed} block {i}");
                }
            }
        }

        Assert.That(lost, Is.Empty);
    }

    [Test]
    public async Task A_flush_makes_earlier_writes_durable_but_not_later_ones()
    {
        // 1. Four blocks written and flushed (A); 2. then block 0 and block 4 written again (B), not flushed.
        var device = new PowerLossDevice(new MemoryDevice(1 << 20));
        await TestData.WriteAsync(device, 0, tag: 1, 4 * Block, durable: false);
        await device.FlushAsync();
        await TestData.WriteAsync(device, 0, tag: 2, Block, durable: false);
        await TestData.WriteAsync(device, 4 * Block, tag: 3, Block, durable: false);

        // 3. Crash many times: A survives except where B may replace it; B may be lost.
        var a = TestData.Pattern(1, 4 * Block);
        var unexpected = new List<string>();
        var laterWriteLost = false;
        for (var seed = 0; seed < Seeds; seed++)
        {
            var image = device.Crash(new Random(seed));
            if (!Read(image, Block, 3 * Block).AsSpan().SequenceEqual(a.AsSpan(Block)))
            {
                unexpected.Add($"seed {seed}: flushed blocks 1-3 changed");
            }

            unexpected.AddRange(SectorsOutside(image, 0, [a[..Block], TestData.Pattern(2, Block)], $"seed {seed} block 0"));
            unexpected.AddRange(SectorsOutside(image, 4 * Block, [new byte[Block], TestData.Pattern(3, Block)], $"seed {seed} block 4"));
            laterWriteLost |= Read(image, 4 * Block, Block).SequenceEqual(new byte[Block]);
        }

        Assert.Multiple(() =>
        {
            Assert.That(unexpected, Is.Empty);
            Assert.That(laterWriteLost, Is.True, "a write after the flush can be lost");
            Assert.That(device.FlushCount, Is.EqualTo(1));
        });
    }

    [Test]
    public async Task Unflushed_writes_are_kept_dropped_or_torn_and_each_sector_is_old_or_new()
    {
        // 1. Old content, durable because the inner device held it before wrapping.
        const int writes = 8;
        var media = new MemoryDevice(1 << 20);
        for (var i = 0; i < writes; i++)
        {
            media.WriteUnaligned(i * Block, TestData.Pattern(100 + i, Block));
        }

        // 2. One unflushed write over each block.
        var device = new PowerLossDevice(media);
        for (var i = 0; i < writes; i++)
        {
            await TestData.WriteAsync(device, i * Block, tag: 200 + i, Block, durable: false);
        }

        // 3. Classify each write after each crash by its sectors: all new, all old, or a mix.
        var fates = new Dictionary<string, int> { ["kept"] = 0, ["dropped"] = 0, ["torn"] = 0 };
        var garbage = new List<string>();
        for (var seed = 0; seed < Seeds; seed++)
        {
            var image = device.Crash(new Random(seed));
            for (var i = 0; i < writes; i++)
            {
                var old = TestData.Pattern(100 + i, Block);
                var @new = TestData.Pattern(200 + i, Block);
                var bytes = Read(image, i * Block, Block);
                var newSectors = 0;
                for (var s = 0; s < Block / Sector; s++)
                {
                    var sector = bytes.AsSpan(s * Sector, Sector);
                    if (sector.SequenceEqual(@new.AsSpan(s * Sector, Sector)))
                    {
                        newSectors++;
                    }
                    else if (!sector.SequenceEqual(old.AsSpan(s * Sector, Sector)))
                    {
                        garbage.Add($"seed {seed} block {i} sector {s}");
                    }
                }

                fates[newSectors switch { Block / Sector => "kept", 0 => "dropped", _ => "torn" }]++;
            }

            if (Read(image, writes * Block, Block).Any(b => b != 0))
            {
                garbage.Add($"seed {seed}: a block nobody wrote changed");
            }
        }

        Assert.Multiple(() =>
        {
            Assert.That(garbage, Is.Empty, "every sector holds its old or its new content, whole");
            Assert.That(fates.Values, Is.All.GreaterThan(Seeds * writes / 10), string.Join(", ", fates));
        });
    }

    [Test]
    public async Task Overlapping_unflushed_writes_leave_each_sector_at_a_value_it_really_held()
    {
        // v0 durable; then unflushed: v1 over blocks 0-1, v2 over block 0, v3 over block 1.
        var media = new MemoryDevice(1 << 20);
        media.WriteUnaligned(0, TestData.Pattern(10, 2 * Block));
        var device = new PowerLossDevice(media);
        await TestData.WriteAsync(device, 0, tag: 11, 2 * Block, durable: false);
        await TestData.WriteAsync(device, 0, tag: 12, Block, durable: false);
        await TestData.WriteAsync(device, Block, tag: 13, Block, durable: false);

        byte[] v0 = TestData.Pattern(10, 2 * Block), v1 = TestData.Pattern(11, 2 * Block);
        byte[][] block0 = [v0[..Block], v1[..Block], TestData.Pattern(12, Block)];
        byte[][] block1 = [v0[Block..], v1[Block..], TestData.Pattern(13, Block)];
        var unexpected = new List<string>();
        var seen0 = new HashSet<int>();
        var seen1 = new HashSet<int>();
        for (var seed = 0; seed < Seeds; seed++)
        {
            var image = device.Crash(new Random(seed));
            unexpected.AddRange(SectorsOutside(image, 0, block0, $"seed {seed} block 0", seen0));
            unexpected.AddRange(SectorsOutside(image, Block, block1, $"seed {seed} block 1", seen1));
        }

        Assert.Multiple(() =>
        {
            Assert.That(unexpected, Is.Empty);
            Assert.That(seen0, Is.EquivalentTo(new[] { 0, 1, 2 }), "block 0 reaches v0, v1 and v2");
            Assert.That(seen1, Is.EquivalentTo(new[] { 0, 1, 2 }), "block 1 reaches v0, v1 and v3");
        });
    }

    [Test]
    public async Task A_durable_write_is_never_undone_by_an_older_cached_write()
    {
        // 1. Unflushed v1 over blocks 0-1; 2. durable v2 over block 1; 3. unflushed v3 over block 1.
        var device = new PowerLossDevice(new MemoryDevice(1 << 20));
        await TestData.WriteAsync(device, 0, tag: 1, 2 * Block, durable: false);
        await TestData.WriteAsync(device, Block, tag: 2, Block, durable: true);
        var afterDurable = new List<byte[]>();
        for (var seed = 0; seed < Seeds; seed++)
        {
            afterDurable.Add(Read(device.Crash(new Random(seed)), 0, 2 * Block));
        }

        await TestData.WriteAsync(device, Block, tag: 3, Block, durable: false);

        var v1 = TestData.Pattern(1, 2 * Block);
        var unexpected = new List<string>();
        var seen1 = new HashSet<int>();
        for (var seed = 0; seed < Seeds; seed++)
        {
            var image = device.Crash(new Random(seed));
            unexpected.AddRange(SectorsOutside(image, 0, [new byte[Block], v1[..Block]], $"seed {seed} block 0"));
            unexpected.AddRange(SectorsOutside(image, Block, [TestData.Pattern(2, Block), TestData.Pattern(3, Block)], $"seed {seed} block 1", seen1));
        }

        Assert.Multiple(() =>
        {
            Assert.That(afterDurable.Select(image => image[Block..]), Is.All.EqualTo(TestData.Pattern(2, Block)));
            Assert.That(unexpected, Is.Empty);
            Assert.That(seen1, Is.EquivalentTo(new[] { 0, 1 }), "block 1 reaches the durable v2 and the later v3");
        });
    }

    [Test]
    public async Task A_crash_is_reproducible_by_seed_and_changes_nothing()
    {
        var device = new PowerLossDevice(new MemoryDevice(1 << 20));
        for (var i = 0; i < 8; i++)
        {
            await TestData.WriteAsync(device, i * Block, tag: i, Block, durable: false);
        }

        var first = Read(device.Crash(new Random(42)), 0, 8 * Block);
        var others = Enumerable.Range(0, 10).Select(seed => Read(device.Crash(new Random(seed)), 0, 8 * Block)).ToList();
        var again = Read(device.Crash(new Random(42)), 0, 8 * Block);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(again, Is.EqualTo(first));
            Assert.That(others.Any(image => !image.SequenceEqual(first)), Is.True, "different seeds, different crashes");
            Assert.That(await TestData.ReadAsync(device, 0, Block), Is.EqualTo(TestData.Pattern(0, Block)), "reads still see the newest data");
        });
    }

    [Test]
    public async Task The_write_log_lists_every_write_in_order()
    {
        var device = new PowerLossDevice(new MemoryDevice(1 << 20));
        await TestData.WriteAsync(device, 0, tag: 1, Block, durable: false);
        await TestData.WriteAsync(device, 4 * Block, tag: 1, 2 * Block, durable: true);
        await device.FlushAsync();
        using var buffer = new AlignedBuffer(Block);
        Assert.CatchAsync<ArgumentException>(async () => await device.WriteAsync(512, buffer.Memory, durable: true));

        Assert.That(device.WriteLog, Is.EqualTo(new[]
        {
            new LoggedWrite(0, Block, Durable: false),
            new LoggedWrite(4 * Block, 2 * Block, Durable: true),
        }));

        device.ClearWriteLog();
        await TestData.WriteAsync(device, Block, tag: 1, Block, durable: true);

        Assert.That(device.WriteLog, Is.EqualTo(new[] { new LoggedWrite(Block, Block, Durable: true) }));
    }

    private static byte[] Read(MemoryDevice image, long offset, int length)
    {
        var bytes = new byte[length];
        image.ReadUnaligned(offset, bytes);
        return bytes;
    }

    /// <summary>
    /// Describes each sector of the block at <paramref name="offset"/> that is not exactly the
    /// same sector of one of <paramref name="candidates"/>; records which candidates were seen.
    /// </summary>
    private static List<string> SectorsOutside(MemoryDevice image, long offset, byte[][] candidates, string where, HashSet<int>? seen = null)
    {
        var bytes = Read(image, offset, Block);
        var problems = new List<string>();
        for (var s = 0; s < Block / Sector; s++)
        {
            var range = new Range(s * Sector, (s + 1) * Sector);
            var match = Array.FindIndex(candidates, candidate => candidate.AsSpan()[range].SequenceEqual(bytes.AsSpan()[range]));
            if (match < 0)
            {
                problems.Add($"{where} sector {s}");
            }
            else
            {
                seen?.Add(match);
            }
        }

        return problems;
    }
}
