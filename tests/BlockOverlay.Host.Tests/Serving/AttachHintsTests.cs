using System.Net.Sockets;

namespace BlockOverlay.Host.Tests.Serving;

/// <summary>The hints serve prints once it listens: in full for a few exports, one line for the rest.</summary>
[TestFixture]
public sealed class AttachHintsTests
{
    private static readonly UnixDomainSocketEndPoint Socket = new("/run/nbd.sock");

    [Test]
    public void A_few_exports_each_get_their_hints()
    {
        var text = AttachHints.Describe(["a", "b"], [Socket]);

        Assert.That(text, Does.Contain("export 'a':").And.Contain("export 'b':").And.Contain("nbd+unix:///b?socket=/run/nbd.sock"));
        Assert.That(text, Does.Not.Contain("more exports"));
    }

    [Test]
    public void Thousands_of_exports_get_the_first_ones_hints_and_one_line_for_the_rest()
    {
        var names = Enumerable.Range(0, 10_000).Select(i => $"i{i}").ToList();

        var lines = AttachHints.Describe(names, [Socket]).Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Multiple(() =>
        {
            Assert.That(lines.Count(l => l.StartsWith("export '", StringComparison.Ordinal)), Is.EqualTo(AttachHints.Shown));
            Assert.That(lines, Does.Contain($"export 'i{AttachHints.Shown - 1}':").And.Not.Contain($"export 'i{AttachHints.Shown}':"));
            Assert.That(lines[^2], Is.EqualTo($"and {10_000 - AttachHints.Shown:N0} more exports, attached the same way by name; to list them all:"));
            Assert.That(lines[^1], Is.EqualTo("  nbdinfo --list 'nbd+unix:///?socket=/run/nbd.sock'"));
        });
    }
}
