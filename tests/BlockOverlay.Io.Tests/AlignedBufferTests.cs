using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

public sealed class AlignedBufferTests
{
    [Test]
    public unsafe void Buffers_and_their_block_slices_are_4096_aligned_and_zeroed()
    {
        var buffers = Enumerable.Range(1, 16).Select(blocks => new AlignedBuffer(blocks * TestData.Block)).ToList();
        try
        {
            foreach (var buffer in buffers)
            {
                using var whole = buffer.Memory.Pin();
                using var lastBlock = buffer.Memory[^TestData.Block..].Pin();
                Assert.Multiple(() =>
                {
                    Assert.That((long)whole.Pointer % TestData.Block, Is.Zero);
                    Assert.That((long)lastBlock.Pointer % TestData.Block, Is.Zero);
                    Assert.That(buffer.Span.ContainsAnyExcept((byte)0), Is.False);
                    Assert.That(buffer.Memory.Length, Is.EqualTo(buffer.Length));
                });
            }
        }
        finally
        {
            buffers.ForEach(buffer => ((IDisposable)buffer).Dispose());
        }
    }

    [TestCase(0)]
    [TestCase(-TestData.Block)]
    [TestCase(512)]
    [TestCase(TestData.Block + 1)]
    public void Lengths_that_are_not_whole_blocks_are_refused(int length) =>
        Assert.Catch<ArgumentException>(() => _ = new AlignedBuffer(length));

    [Test]
    public void A_disposed_buffer_refuses_access()
    {
        var buffer = new AlignedBuffer(TestData.Block);
        var memory = buffer.Memory;

        ((IDisposable)buffer).Dispose();

        Assert.Multiple(() =>
        {
            Assert.Throws<ObjectDisposedException>(() => _ = buffer.Span);
            Assert.Throws<ObjectDisposedException>(() => _ = memory.Span);
            Assert.Throws<ObjectDisposedException>(() => memory.Pin());
        });
    }
}
