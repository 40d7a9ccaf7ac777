namespace BlockOverlay.LibNbd.Tests;

[TestFixture]
public sealed class NativeBufferTests
{
    [Test]
    public void Buffer_is_aligned_as_asked_and_spans_its_length()
    {
        using var buffer = new NativeBuffer(3 * 4096, alignment: 4096);

        Assert.Multiple(() =>
        {
            Assert.That((long)buffer.Address % 4096, Is.Zero);
            Assert.That(buffer.Span.Length, Is.EqualTo(3 * 4096));
            Assert.That(buffer.Length, Is.EqualTo(3 * 4096));
        });
    }

    [Test]
    public void Disposed_buffer_refuses_access()
    {
        var buffer = new NativeBuffer(512);
        buffer.Dispose();

        Assert.Multiple(() =>
        {
            Assert.That(() => buffer.Span.Length, Throws.TypeOf<ObjectDisposedException>());
            Assert.That(() => buffer.Address, Throws.TypeOf<ObjectDisposedException>());
        });
    }
}
