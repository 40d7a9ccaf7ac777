using System.Buffers;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io.Tests;

/// <summary>
/// How both file backends describe a gather write to the kernel: which segments merge into one
/// iovec, and how a short write is continued. A short write cannot be provoked on a store file
/// (an O_DIRECT overwrite inside it is written whole or fails), so the continuation is proved here.
/// </summary>
public sealed unsafe class IoVecsTests
{
    private const int Block = TestData.Block;

    [Test]
    public void Segments_that_follow_each_other_in_memory_merge_into_one_iovec_and_others_do_not()
    {
        using var buffer = new AlignedBuffer(8 * Block);
        using var other = new AlignedBuffer(Block);
        var memory = buffer.Memory;
        ReadOnlyMemory<byte>[] segments =
        [
            memory[..Block], memory.Slice(Block, 2 * Block), // in order: one iovec
            other.Memory,                                     // elsewhere
            memory.Slice(5 * Block, Block), memory.Slice(4 * Block, Block), // adjacent, but backwards
            memory.Slice(7 * Block, Block),                   // a gap before it
        ];
        var pins = new List<MemoryHandle>();
        var iovecs = stackalloc LibC.IoVec[segments.Length];
        try
        {
            var count = IoVecs.Pin(segments, pins, iovecs);

            using var start = buffer.Memory.Pin();
            var at = (byte*)start.Pointer;
            Assert.Multiple(() =>
            {
                Assert.That(pins, Has.Count.EqualTo(segments.Length), "every segment pinned");
                Assert.That(count, Is.EqualTo(5));
                Assert.That(Describe(iovecs, count), Is.EqualTo(new[]
                {
                    ((nint)at, 3 * Block), (AddressOf(other), Block), ((nint)(at + (5 * Block)), Block),
                    ((nint)(at + (4 * Block)), Block), ((nint)(at + (7 * Block)), Block),
                }));
            });
        }
        finally
        {
            pins.ForEach(pin => pin.Dispose());
        }
    }

    [TestCase(Block, 1, 3 * Block, TestName = "Advance_to_the_end_of_an_iovec_skips_it_whole")]
    [TestCase(4 * Block, 2, 2 * Block, TestName = "Advance_past_several_iovecs_skips_them_all")]
    [TestCase((2 * Block) + 512, 1, (2 * Block) - 512, TestName = "Advance_that_ends_inside_an_iovec_shortens_it")]
    [TestCase(512, 0, Block - 512, TestName = "Advance_inside_the_first_iovec_shortens_it")]
    [TestCase(6 * Block, 3, 0, TestName = "Advance_past_everything_skips_every_iovec")]
    public void Advance(long written, int skipped, int leftInFirst)
    {
        // Three iovecs of 1, 3 and 2 blocks, one after another in one buffer: after a write of
        // `written` bytes, what is left starts at byte `written` of the buffer.
        using var buffer = new AlignedBuffer(6 * Block);
        using var pin = buffer.Memory.Pin();
        var at = (byte*)pin.Pointer;
        var iovecs = stackalloc LibC.IoVec[]
        {
            new() { Base = at, Length = Block },
            new() { Base = at + Block, Length = 3 * Block },
            new() { Base = at + (4 * Block), Length = 2 * Block },
        };

        Assert.That(IoVecs.Advance(iovecs, 3, written), Is.EqualTo(skipped));
        if (skipped < 3)
        {
            var first = iovecs[skipped];
            Assert.That(((long)((byte*)first.Base - at), (int)first.Length), Is.EqualTo((written, leftInFirst)));
        }
    }

    private static nint AddressOf(AlignedBuffer buffer)
    {
        using var pin = buffer.Memory.Pin();
        return (nint)pin.Pointer;
    }

    private static (nint Base, int Length)[] Describe(LibC.IoVec* iovecs, int count)
    {
        var described = new (nint, int)[count];
        for (var i = 0; i < count; i++)
        {
            described[i] = ((nint)iovecs[i].Base, (int)iovecs[i].Length);
        }

        return described;
    }
}
