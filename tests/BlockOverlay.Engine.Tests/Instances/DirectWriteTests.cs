using System.Buffers;
using System.Runtime.InteropServices;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using static BlockOverlay.Engine.Tests.Cache.CacheTestKit;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// <see cref="InstanceExport.TryWriteNow"/>: whole blocks that need no wait are copied into the
/// cache from the caller's pieces before it returns; anything that would wait is declined with
/// nothing changed, and what fails is reported through the completion.
/// </summary>
[TestFixture]
public sealed class DirectWriteTests
{
    /// <summary>A sequence over <paramref name="bytes"/> cut into pieces of the given sizes (the last takes the rest).</summary>
    private static ReadOnlySequence<byte> InPieces(byte[] bytes, params int[] sizes)
    {
        Piece? first = null, last = null;
        int at = 0;
        foreach (int size in sizes.Append(bytes.Length))
        {
            int length = Math.Min(size, bytes.Length - at);
            var piece = new Piece(bytes.AsMemory(at, length).ToArray(), at);
            if (last is null)
            {
                first = piece;
            }
            else
            {
                last.Link(piece);
            }

            last = piece;
            at += length;
            if (at == bytes.Length)
            {
                break;
            }
        }

        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Piece : ReadOnlySequenceSegment<byte>
    {
        public Piece(byte[] bytes, long runningIndex) => (Memory, RunningIndex) = (bytes, runningIndex);

        public void Link(Piece next) => Next = next;
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static async Task<byte[]> ReadAsync(InstanceExport export, long offset, int length)
    {
        var bytes = new byte[length];
        await export.ReadAsync(offset, bytes);
        return bytes;
    }

    [Test]
    public async Task Whole_blocks_in_pieces_of_any_size_are_in_the_cache_when_it_returns()
    {
        await using var store = await NewStoreAsync(new MemoryDevice(64L * MiB));
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var export = (await OpenAsync(cache, 4 * MiB, FlushMode.Isolated, "direct"))[0];
        await using var _export = export;
        var bytes = Pattern(4 * Block, 1);
        var source = InPieces(bytes, 1000, 3000, 5, 2 * Block, 91); // pieces that cut blocks anywhere

        Assert.That(export.TryWriteNow(2 * Block, source, WriteFlags.None, out var completion), Is.True);
        Array.Clear(bytes); // the caller's memory is its own again
        foreach (var piece in source)
        {
            MemoryMarshal.AsMemory(piece).Span.Clear();
        }

        await completion;
        Assert.Multiple(async () =>
        {
            Assert.That(await ReadAsync(export, 2 * Block, 4 * Block), Is.EqualTo(Pattern(4 * Block, 1)));
            Assert.That(export.DirtyBytes, Is.EqualTo(4 * Block), "in the cache, not yet written back");
        });
    }

    [Test]
    public async Task With_FUA_the_completion_ends_when_the_write_is_durable()
    {
        await using var store = await NewStoreAsync(new MemoryDevice(64L * MiB));
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var export = (await OpenAsync(cache, 4 * MiB, FlushMode.Isolated, "direct"))[0];
        await using var _export = export;

        Assert.That(export.TryWriteNow(0, InPieces(Pattern(2 * Block, 2), 100), WriteFlags.Fua, out var completion), Is.True);
        await completion;
        Assert.That(export.DirtyBytes, Is.Zero, "an isolated flush wrote the instance back");
    }

    [Test]
    public async Task What_would_wait_or_merge_is_declined_and_changes_nothing()
    {
        await using var store = await NewStoreAsync(new MemoryDevice(64L * MiB));
        var options = CacheOptions.FlushOnly with { InstanceDirtyLimit = MiB };
        await using var cache = new WriteBackCache(store, options);
        var export = (await OpenAsync(cache, 4 * MiB, FlushMode.Isolated, "direct"))[0];
        await using var _export = export;
        var block = new ReadOnlySequence<byte>(Pattern(Block, 3));

        Assert.Multiple(() =>
        {
            Assert.That(export.TryWriteNow(512, block, WriteFlags.None, out _), Is.False, "not at a block's start: a merge reads first");
            Assert.That(export.TryWriteNow(0, block.Slice(0, 512), WriteFlags.None, out _), Is.False, "not whole blocks");
            Assert.That(export.DirtyBytes, Is.Zero);
        });

        // At the instance's dirty limit a writer waits for its write-back: declined.
        await export.WriteAsync(0, Pattern(MiB, 4), WriteFlags.None);
        Assert.That(export.TryWriteNow(MiB, block, WriteFlags.None, out _), Is.False, "at the dirty limit");
        Assert.That(await ReadAsync(export, MiB, Block), Is.EqualTo(new byte[Block]));
    }

    [Test]
    public async Task Past_the_quota_it_is_taken_and_fails_with_no_space_changing_nothing()
    {
        await using var store = await NewStoreAsync(new MemoryDevice(64L * MiB));
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var export = new InstanceExport(cache, await store.CreateInstanceAsync("limited", 4 * MiB, null, quota: 4 * Block), null);
        await export.WriteAsync(0, Pattern(4 * Block, 5), WriteFlags.None);

        Assert.That(export.TryWriteNow(8 * Block, new ReadOnlySequence<byte>(Pattern(Block, 6)), WriteFlags.None, out var completion), Is.True);
        var failure = Assert.ThrowsAsync<ExportException>(async () => await completion);
        Assert.Multiple(async () =>
        {
            Assert.That(failure!.Error, Is.EqualTo(ExportError.NoSpace));
            Assert.That(await ReadAsync(export, 8 * Block, Block), Is.EqualTo(new byte[Block]));
            Assert.That(export.DirtyBytes, Is.EqualTo(4 * Block));
        });
    }

    [Test]
    public void The_range_lock_is_tried_without_waiting()
    {
        var locks = new BlockRangeLock();
        var held = locks.TryAcquire(4, 7);
        Assert.Multiple(() =>
        {
            Assert.That(held, Is.Not.Null);
            Assert.That(locks.TryAcquire(7, 9), Is.Null, "overlapping a held range");
            using var disjoint = locks.TryAcquire(8, 9);
            Assert.That(disjoint, Is.Not.Null, "beside it");
        });
        held!.Dispose();
        using var again = locks.TryAcquire(5, 5);
        Assert.That(again, Is.Not.Null, "once released");
    }
}
