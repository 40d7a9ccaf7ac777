using System.Text.RegularExpressions;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// What a guest script said on the console (tests/e2e/guest/lib.sh prints it): the SHA-256
/// of each file it reported and ext4's kernel messages.
/// </summary>
internal sealed partial record GuestReport(IReadOnlyDictionary<string, string> Files, IReadOnlyList<string> KernelMessages)
{
    public static GuestReport Parse(IEnumerable<string> lines)
    {
        var files = new Dictionary<string, string>();
        var kernel = new List<string>();
        foreach (var line in lines)
        {
            // Kernel messages can land on the console in the middle of a script's line, so a
            // report is found anywhere in a line, not only at its start.
            if (FileLine().Match(line) is { Success: true } file)
            {
                files[file.Groups[1].Value] = file.Groups[2].Value;
            }
            else if (KernelLine().Match(line) is { Success: true } message)
            {
                kernel.Add(message.Groups[1].Value);
            }
        }

        return new GuestReport(files, kernel);
    }

    /// <summary>The SHA-256 the guest reported for <paramref name="path"/>; fails the test if it reported none.</summary>
    public string Sha256Of(string path, Evidence evidence)
    {
        Assert.That(Files, Does.ContainKey(path), () => $"the guest reported no checksum of {path}\n{evidence}");
        return Files[path];
    }

    [GeneratedRegex(@"E2E-FILE (\S+) ([0-9a-f]{64})")]
    private static partial Regex FileLine();

    [GeneratedRegex(@"E2E-KERNEL (.*)$")]
    private static partial Regex KernelLine();
}
