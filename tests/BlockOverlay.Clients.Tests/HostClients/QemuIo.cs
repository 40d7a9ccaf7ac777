using System.Globalization;
using System.Text.RegularExpressions;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// One qemu-io command that changes bytes, and what it leaves there: <c>write -P</c> a
/// pattern, <c>write -z</c> (WRITE_ZEROES with NO_HOLE), <c>write -z -u</c> (WRITE_ZEROES
/// that may unmap), <c>discard</c> (TRIM, which on an instance reads back as zeros).
/// </summary>
internal sealed record QemuIoEdit(string Verb, long Offset, int Length, byte Fill)
{
    public static QemuIoEdit Write(long offset, int length, byte pattern) =>
        new(string.Create(CultureInfo.InvariantCulture, $"write -P 0x{pattern:x2}"), offset, length, pattern);

    public static QemuIoEdit Zero(long offset, int length) => new("write -z", offset, length, 0);

    public static QemuIoEdit ZeroMayUnmap(long offset, int length) => new("write -z -u", offset, length, 0);

    public static QemuIoEdit Discard(long offset, int length) => new("discard", offset, length, 0);

    public string Command => string.Create(CultureInfo.InvariantCulture, $"{Verb} {Offset} {Length}");

    /// <summary>A read that checks every byte of the range against what this edit left.</summary>
    public string ReadBack => string.Create(CultureInfo.InvariantCulture, $"read -P 0x{Fill:x2} {Offset} {Length}");

    /// <summary>What the disk holds after these edits, in order, over <paramref name="before"/>.</summary>
    public static byte[] Apply(byte[] before, IEnumerable<QemuIoEdit> edits)
    {
        var after = (byte[])before.Clone();
        foreach (var edit in edits)
        {
            after.AsSpan((int)edit.Offset, edit.Length).Fill(edit.Fill);
        }

        return after;
    }
}

/// <summary>
/// qemu-io against a store server. It is write-through by default (every write carries FUA);
/// <c>-t writeback</c> sends plain writes, and FLUSH for <c>flush</c> and when it closes.
/// </summary>
internal static partial class QemuIo
{
    /// <summary>
    /// Runs qemu-io with one <c>-c</c> per command and fails the test unless it exits 0 with
    /// one success line per I/O command and no failure: qemu-io does not always exit non-zero
    /// when a command fails.
    /// </summary>
    public static void Run(StoreServer server, string uri, IEnumerable<string> options, IReadOnlyList<string> commands)
    {
        var result = ClientTool.QemuIo.Run(Arguments(uri, options, commands), TimeSpan.FromSeconds(30));
        var output = result.Output.Split('\n');
        Assert.Multiple(() =>
        {
            Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
            Assert.That(Failures(output), Is.Empty, () => $"{result}\n{server}");
            Assert.That(Successes(output), Is.EqualTo(ExpectedSuccesses(commands)), () => $"one success line per I/O command\n{result}");
        });
    }

    /// <summary>
    /// Starts qemu-io running <paramref name="commands"/> and then sleeping, so its connection
    /// stays open and it never closes the disk (closing would flush); returns once every
    /// command has succeeded. stdbuf makes qemu-io print each line as it happens instead of at exit.
    /// </summary>
    public static BackgroundProcess StartAndHold(StoreServer server, string uri, IEnumerable<string> options, IReadOnlyList<string> commands)
    {
        var args = Arguments(uri, options, [.. commands, "sleep 120000"]);
        var qemuIo = BackgroundProcess.Start(HostTool.Stdbuf.Path, ["-oL", "-eL", ClientTool.QemuIo.Path, .. args]);
        try
        {
            var expected = ExpectedSuccesses(commands);
            qemuIo.WaitFor($"{expected} success lines", lines => Successes(lines) == expected || Failures(lines).Any(), TimeSpan.FromSeconds(30));
            Assert.That(Failures(qemuIo.Lines), Is.Empty, () => $"{qemuIo}\n{server}");
            return qemuIo;
        }
        catch
        {
            qemuIo.Dispose();
            throw;
        }
    }

    private static List<string> Arguments(string uri, IEnumerable<string> options, IEnumerable<string> commands)
    {
        List<string> args = ["-f", "raw", .. options, uri];
        foreach (var command in commands)
        {
            args.Add("-c");
            args.Add(command);
        }

        return args;
    }

    private static int ExpectedSuccesses(IEnumerable<string> commands) =>
        commands.Count(c => c.StartsWith("write", StringComparison.Ordinal) || c.StartsWith("read", StringComparison.Ordinal)
            || c.StartsWith("discard", StringComparison.Ordinal));

    private static int Successes(IEnumerable<string> lines) => lines.Count(l => SuccessLine().IsMatch(l));

    private static IEnumerable<string> Failures(IEnumerable<string> lines) =>
        lines.Where(l => l.Contains("failed", StringComparison.OrdinalIgnoreCase) || l.Contains("error", StringComparison.OrdinalIgnoreCase));

    [GeneratedRegex(@"^(wrote|read|discard) (\d+)/\2 bytes at offset \d+$")]
    private static partial Regex SuccessLine();
}
