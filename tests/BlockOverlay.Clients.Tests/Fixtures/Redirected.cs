using System.Diagnostics;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>How the tests start a program: its arguments as separate words, all three standard streams redirected.</summary>
internal static class Redirected
{
    public static ProcessStartInfo StartInfo(string file, IEnumerable<string> args) => new(file, args)
    {
        RedirectStandardInput = true,
        RedirectStandardOutput = true,
        RedirectStandardError = true,
        UseShellExecute = false,
    };
}
