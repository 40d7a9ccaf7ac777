using System.Diagnostics;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>What a finished process left behind.</summary>
internal sealed record ToolResult(string CommandLine, int ExitCode, string Stdout, string Stderr)
{
    /// <summary>stdout and stderr together, for tools that report failures on either.</summary>
    public string Output => Stdout + Stderr;

    /// <summary>The whole story, for assertion messages.</summary>
    public override string ToString() =>
        $"`{CommandLine}` exited with {ExitCode}\n--- stdout ---\n{Tail(Stdout)}\n--- stderr ---\n{Tail(Stderr)}";

    private static string Tail(string text) => text.Length <= 8000 ? text : "…" + text[^8000..];
}

/// <summary>Runs programs to completion with a deadline.</summary>
internal static class Tool
{
    /// <summary>
    /// The system directories only. nbdsh needs the system python3 (a pyenv python3 is
    /// first on PATH on these machines and has no `nbd` module), and every client tool
    /// lives here, so every tool runs with this PATH.
    /// </summary>
    public const string SystemPath = "/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>
    /// Runs <paramref name="file"/> and waits for it. A process still running after
    /// <paramref name="timeout"/> is killed with its children and fails the test, so a
    /// hung client or server can never hang the suite.
    /// </summary>
    public static ToolResult Run(string file, IEnumerable<string> args, TimeSpan timeout)
    {
        var startInfo = Redirected.StartInfo(file, args);

        startInfo.Environment["PATH"] = SystemPath;
        var commandLine = string.Join(' ', startInfo.ArgumentList.Prepend(file).Select(Quote));

        using var process = Process.Start(startInfo)
            ?? throw new InvalidOperationException($"could not start {commandLine}");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"`{commandLine}` was still running after {timeout.TotalSeconds} s and was killed\n" +
                $"--- stdout ---\n{stdout.Result}\n--- stderr ---\n{stderr.Result}");
        }

        process.WaitForExit();
        return new ToolResult(commandLine, process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_=+/.:,@%".Contains(c))
            ? arg
            : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

/// <summary>A client program from a Debian package; tests using a missing one are ignored.</summary>
internal sealed record ClientTool(string Name, string Package)
{
    public static readonly ClientTool Nbdinfo = new("nbdinfo", "libnbd-bin");
    public static readonly ClientTool Nbdcopy = new("nbdcopy", "libnbd-bin");
    public static readonly ClientTool Nbdsh = new("nbdsh", "python3-libnbd");
    public static readonly ClientTool QemuImg = new("qemu-img", "qemu-utils");
    public static readonly ClientTool QemuIo = new("qemu-io", "qemu-utils");
    public static readonly ClientTool Fio = new("fio", "fio");

    /// <summary>Where the program is; ignores the calling test when it is not installed.</summary>
    public string Path
    {
        get
        {
            var path = Tool.SystemPath.Split(':')
                .Select(dir => System.IO.Path.Combine(dir, Name))
                .FirstOrDefault(File.Exists);
            if (path is null)
            {
                Assert.Ignore($"{Name} is not installed: it comes with the Debian package {Package} (`make deps` installs it)");
            }

            return path!;
        }
    }

    public ToolResult Run(IEnumerable<string> args, TimeSpan timeout) => Tool.Run(Path, args, timeout);

    public ToolResult Run(params string[] args) => Run(args, TimeSpan.FromSeconds(30));
}
