using BlockOverlay.Engine.Exports;

namespace BlockOverlay.Engine.Tests.Exports;

public sealed class ByteSizeTests
{
    [TestCase("0", 0L)]
    [TestCase("4096", 4096L)]
    [TestCase("512K", 512L << 10)]
    [TestCase("512k", 512L << 10)]
    [TestCase("64M", 64L << 20)]
    [TestCase("64MiB", 64L << 20)]
    [TestCase("64mib", 64L << 20)]
    [TestCase("1G", 1L << 30)]
    [TestCase("1T", 1L << 40)]
    [TestCase("3P", 3L << 50)]
    [TestCase("7E", 7L << 60)]
    [TestCase("9223372036854775807", long.MaxValue)]
    public void Parses_numbers_with_binary_units(string text, long bytes)
    {
        Assert.Multiple(() =>
        {
            Assert.That(ByteSize.Parse(text).Bytes, Is.EqualTo(bytes));
            Assert.That(ByteSize.TryParse(text, out ByteSize size), Is.True);
            Assert.That(size.Bytes, Is.EqualTo(bytes));
        });
    }

    [TestCase("", "empty")]
    [TestCase("-1", "negative")]
    [TestCase("-64M", "negative")]
    [TestCase("+1", "not a size")]
    [TestCase("1.5G", "unknown unit")]
    [TestCase(" 1G", "not a size")]
    [TestCase("1G ", "unknown unit")]
    [TestCase("G", "not a size")]
    [TestCase("12X", "unknown unit")]
    [TestCase("1iB", "unknown unit")]
    [TestCase("0x10", "unknown unit")]
    [TestCase("64MB", "binary")]
    [TestCase("8E", "too large")]
    [TestCase("8192P", "too large")]
    [TestCase("9223372036854775808", "too large")]
    [TestCase("99999999999999999999999", "too large")]
    public void Rejects_what_is_not_a_size_and_says_why(string text, string reason)
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => ByteSize.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains(reason));
            Assert.That(ByteSize.TryParse(text, out _), Is.False);
        });
    }

    [Test]
    public void TryParse_of_null_is_false() => Assert.That(ByteSize.TryParse(null, out _), Is.False);

    [TestCase(0L, "0")]
    [TestCase(1L, "1")]
    [TestCase(1024L, "1K")]
    [TestCase(1536L, "1536")]
    [TestCase(4097L, "4097")]
    [TestCase(64L << 20, "64M")]
    [TestCase(1536L << 20, "1536M")]
    [TestCase(1L << 40, "1T")]
    [TestCase(1L << 62, "4E")]
    [TestCase(long.MaxValue, "9223372036854775807")]
    public void Prints_the_shortest_exact_form_which_parses_back(long bytes, string text)
    {
        var size = new ByteSize(bytes);

        Assert.Multiple(() =>
        {
            Assert.That(size.ToString(), Is.EqualTo(text));
            Assert.That(ByteSize.Parse(size.ToString()), Is.EqualTo(size));
        });
    }

    [Test]
    public void A_negative_size_cannot_be_made() =>
        Assert.That(() => new ByteSize(-1), Throws.InstanceOf<ArgumentOutOfRangeException>());
}
