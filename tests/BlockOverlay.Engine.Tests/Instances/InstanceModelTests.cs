using System.Diagnostics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// Model-based tests of copy-on-write instances through <see cref="IExport"/>: three instances
/// of one base image file in one store on a <see cref="MemoryDevice"/>, driven by seeded random
/// operations (unaligned writes, FUA writes, reads, trims, zeroing with and without NoHole,
/// flushes, clean reopens, kills, re-creation) and compared byte for byte with a model.
/// </summary>
/// <remarks>
/// A kill opens the store on a copy of the device without closing the old one. Every block
/// must then read as its content at the instance's last durable point (flush, FUA, clean
/// close) or a content it had after that (DESIGN.md, invariant 5); the model then adopts what it reads.
/// The base file's bytes, size and mtime must never change (DESIGN.md, invariant 8); one instance's
/// data never shows in another (DESIGN.md, invariant 4) — any read of it would differ from the model.
/// </remarks>
[TestFixture]
public sealed class InstanceModelTests
{
    /// <summary>
    /// A cache that never rests: background write-back of anything dirty for a millisecond,
    /// throttling at 1 MiB, and checkpoints at a quarter of the journal, all racing the workload.
    /// </summary>
    private static readonly CacheOptions BusyCache = new()
    {
        InstanceDirtyLimit = 1 << 20,
        GlobalDirtyLimit = 1 << 20,
        BackgroundRatio = 0.05,
        MaxDirtyAge = TimeSpan.FromMilliseconds(1),
        BackgroundInterval = TimeSpan.FromMilliseconds(1),
        BackgroundBatchBlocks = 8,
        CheckpointAtJournalFill = 0.25,
    };

    private const int BaseSize = (300 << 10) + 1234; // not a whole number of blocks: the last base block ends in zeros
    private static readonly (string, long)[] Instances = [("alpha", 512 << 10), ("beta", 768 << 10), ("gamma", 1 << 20)];

    [TestCase(1, 3000)]
    [TestCase(2, 3000)]
    [TestCase(3, 3000)]
    [TestCase(4, 3000)]
    [TestCase(5, 3000)]
    public async Task Random_operations_on_three_instances_of_one_base_match_the_model(int seed, int steps)
    {
        var watch = Stopwatch.StartNew();
        var rng = new Random(seed);
        using var testBase = await TestBase.CreateAsync(seed, BaseSize);
        byte[] baseHash = testBase.HashFile();
        var before = new FileInfo(testBase.Path);
        var (mtime, size) = (before.LastWriteTimeUtc, before.Length);

        await using var media = new MemoryMedia(16 << 20);
        // Odd seeds keep the cache still until a flush; even ones run it with write-back and
        // checkpoints going on underneath every operation.
        await using var workload = await InstanceWorkload.CreateAsync(
            testBase, media, rng, ContentMode.Random, journalBlocks: seed % 2 == 0 ? 16 : 64, Instances, seed % 2 == 0 ? BusyCache : null);
        for (int i = 0; i < steps; i++)
        {
            await workload.StepAsync();
        }

        await workload.VerifyAllAsync("at the end");
        await workload.CleanReopenAsync();
        await workload.KillReopenAsync();
        await workload.VerifyAllAsync("after the final kill");
        await workload.CloseAsync();

        var after = new FileInfo(testBase.Path);
        Assert.Multiple(() =>
        {
            Assert.That(testBase.HashFile(), Is.EqualTo(baseHash), "the base image's bytes changed");
            Assert.That(after.Length, Is.EqualTo(size), "the base image's size changed");
            Assert.That(after.LastWriteTimeUtc, Is.EqualTo(mtime), "the base image's mtime changed");
        });
        string summary = $"seed {seed}: {workload.Op} operations in {watch.ElapsedMilliseconds} ms: " +
            string.Join(", ", workload.Counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key} {c.Value}"));
        await TestContext.Out.WriteLineAsync(summary);
        TestReport.Write(summary);
    }

    /// <summary>
    /// The same operations, but each instance driven by its own task at the same time, over a
    /// device that yields inside every I/O so that commits, checkpoints (a 16-block journal fills
    /// often), allocations, frees and re-creations of different instances interleave. Between
    /// rounds, with all tasks stopped: a kill, a clean reopen or a full comparison.
    /// </summary>
    [TestCase(21, 10, 120)]
    [TestCase(22, 10, 120)]
    [TestCase(23, 10, 120)]
    public async Task Concurrent_operations_on_the_three_instances_match_the_model(int seed, int rounds, int stepsPerRound)
    {
        var watch = Stopwatch.StartNew();
        var rng = new Random(seed);
        using var testBase = await TestBase.CreateAsync(seed, BaseSize);
        byte[] baseHash = testBase.HashFile();
        await using var media = new YieldingMemoryMedia(16 << 20);
        await using var workload = await InstanceWorkload.CreateAsync(testBase, media, rng, ContentMode.Random, journalBlocks: 16, Instances, BusyCache);
        for (int round = 0; round < rounds; round++)
        {
            await Task.WhenAll(workload.Models.Select(model => Task.Run(async () =>
            {
                for (int i = 0; i < stepsPerRound; i++)
                {
                    await workload.StepOnAsync(model);
                }
            })));
            switch (rng.Next(3))
            {
                case 0:
                    await workload.KillReopenAsync();
                    break;
                case 1:
                    await workload.CleanReopenAsync();
                    break;
                default:
                    await workload.VerifyAllAsync("between rounds");
                    break;
            }
        }

        await workload.VerifyAllAsync("at the end");
        await workload.KillReopenAsync();
        await workload.CloseAsync();
        Assert.That(testBase.HashFile(), Is.EqualTo(baseHash), "the base image's bytes changed");
        await TestContext.Out.WriteLineAsync($"seed {seed}: {workload.Op} operations in {watch.ElapsedMilliseconds} ms: " +
            string.Join(", ", workload.Counts.OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key} {c.Value}")));
    }

    /// <summary>DESIGN.md, invariant 4 in isolation: everything written to one instance, durably or not, stays out of the others.</summary>
    [Test]
    public async Task One_instances_writes_never_appear_in_another_before_or_after_a_kill()
    {
        using var testBase = await TestBase.CreateAsync(7, BaseSize);
        await using var media = new MemoryMedia(16 << 20);
        await using var workload = await InstanceWorkload.CreateAsync(
            testBase, media, new Random(7), ContentMode.Random, journalBlocks: 16, Instances);
        long blocks = workload.Models[0].Blocks;
        const int Block = InstanceWorkload.Block;
        for (long b = 0; b < blocks; b++)
        {
            await workload.WriteAsync(0, b * Block, Filled(Block, 0xA1), b % 7 == 0 ? WriteFlags.Fua : WriteFlags.None);
        }

        // Trim half of it again (frees upper blocks for reuse), durably; then rewrite it without a flush.
        await workload.TrimAsync(0, 0, blocks / 2 * Block, WriteFlags.Fua);
        for (long b = 0; b < blocks / 2; b++)
        {
            await workload.WriteAsync(0, b * Block, Filled(Block, 0xA2), WriteFlags.None);
        }

        // Others write partial blocks over the base: read-modify-write must merge base bytes, never alpha's.
        await workload.WriteAsync(1, 100, [0xB1, 0xB1], WriteFlags.None);
        await workload.Exports[1].FlushAsync();
        workload.Models[1].MarkDurable();
        await workload.WriteAsync(2, BaseSize - 1, [0xC1, 0xC1, 0xC1], WriteFlags.Fua);

        await CheckOthersAsync("before any crash");
        await workload.KillReopenAsync();
        await CheckOthersAsync("after a kill");

        async Task CheckOthersAsync(string when)
        {
            foreach (int i in new[] { 1, 2 })
            {
                var model = workload.Models[i];
                byte[] expected = testBase.InitialContent(model.Size);
                if (i == 1)
                {
                    expected[100] = expected[101] = 0xB1;
                }
                else
                {
                    expected[BaseSize - 1] = expected[BaseSize] = expected[BaseSize + 1] = 0xC1;
                }

                byte[] actual = new byte[model.Size];
                await workload.Exports[i].ReadAsync(0, actual);
                int leaked = Enumerable.Range(0, (int)(model.Size / Block))
                    .Count(b => actual.AsSpan(b * Block, Block).IndexOfAnyExcept((byte)0xA1) < 0 ||
                                actual.AsSpan(b * Block, Block).IndexOfAnyExcept((byte)0xA2) < 0);
                Assert.Multiple(() =>
                {
                    Assert.That(leaked, Is.Zero, $"{model.Name} {when}: blocks holding alpha's data");
                    Assert.That(actual.AsSpan().SequenceEqual(expected), Is.True, $"{model.Name} {when}: content differs from base + its own writes");
                });
            }
        }
    }

    private static byte[] Filled(int length, byte value)
    {
        byte[] bytes = new byte[length];
        Array.Fill(bytes, value);
        return bytes;
    }
}
