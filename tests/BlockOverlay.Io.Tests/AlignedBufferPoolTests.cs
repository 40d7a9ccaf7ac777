using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

public sealed class AlignedBufferPoolTests
{
    [TestCase(1)]
    [TestCase(3)]
    [TestCase(256)]
    public unsafe void A_rented_buffer_is_aligned_and_holds_the_length(int blocks)
    {
        var pool = new AlignedBufferPool();
        var buffer = pool.Rent(blocks * TestData.Block);
        using (var pin = buffer.Memory.Pin())
        {
            Assert.That((long)pin.Pointer % TestData.Block, Is.Zero);
            Assert.That(buffer.Length, Is.GreaterThanOrEqualTo(blocks * TestData.Block));
        }

        pool.Return(buffer);
    }

    [Test]
    public void A_buffer_given_back_is_the_next_one_rented_of_its_size()
    {
        var pool = new AlignedBufferPool();
        var first = pool.Rent(3 * TestData.Block);
        pool.Return(first);
        Assert.That(pool.Rent(4 * TestData.Block), Is.SameAs(first), "3 and 4 blocks are one size");
    }

    [Test]
    public void A_size_keeps_what_its_bound_allows_and_frees_the_rest()
    {
        var pool = new AlignedBufferPool();
        var rented = Enumerable.Range(0, 3).Select(_ => pool.Rent(AlignedBufferPool.PooledMax)).ToList();
        rented.ForEach(pool.Return);
        Assert.Multiple(() =>
        {
            Assert.That(rented[1].Span.Length, Is.EqualTo(AlignedBufferPool.PooledMax), "kept: at least two of any size");
            Assert.Throws<ObjectDisposedException>(() => _ = rented[2].Span, "past the bound: freed");
        });
    }

    [Test]
    public void A_buffer_larger_than_the_pooled_sizes_is_freed_when_given_back()
    {
        var pool = new AlignedBufferPool();
        var large = pool.Rent(AlignedBufferPool.PooledMax + TestData.Block);
        Assert.That(large.Length, Is.EqualTo(AlignedBufferPool.PooledMax + TestData.Block));
        pool.Return(large);
        Assert.Throws<ObjectDisposedException>(() => _ = large.Span);
    }

    [Test]
    public void Renting_and_giving_back_a_size_the_pool_holds_allocates_nothing()
    {
        var pool = new AlignedBufferPool();
        pool.Return(pool.Rent(TestData.Block));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++)
        {
            pool.Return(pool.Rent(TestData.Block));
        }

        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.Zero);
    }

    [TestCase(0)]
    [TestCase(512)]
    public void Lengths_that_are_not_whole_blocks_are_refused(int length) =>
        Assert.Catch<ArgumentException>(() => new AlignedBufferPool().Rent(length));
}
