using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.MakeRun;

/// <summary>
/// <c>make run</c> of this checkout, started as a newcomer starts it but with its var/ in a
/// test's directory (<c>RUN_DIR</c>), and stopped with the SIGINT that Ctrl-C sends.
/// </summary>
/// <remarks>
/// <para><b>Without rebuilding.</b> It runs <c>make -o build run</c>: the run target's own
/// recipe, with its <c>build</c> prerequisite taken as done. <c>make test</c> has just built
/// (that is what makes bin/blockoverlay exist), and rebuilding the solution would take about
/// 25 s and rewrite the assemblies this test runs from.</para>
/// <para><b>Ctrl-C.</b> Ctrl-C sends SIGINT to make and the server alike; GNU make then waits
/// for the server and dies of the signal itself, so its exit code would say nothing about the
/// server. SIGINT goes to the server alone instead (the process whose working directory is
/// the test's and whose program is bin/blockoverlay; the recipe execs it), and make then exits
/// with the server's exit code.</para>
/// <para><b>Nothing left behind.</b> Disposing kills make and everything under it by PID.</para>
/// </remarks>
internal sealed class MakeRunProcess : IDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);
    private static readonly ClientTool Make = new("make", "make");

    private readonly BackgroundProcess _make;
    private readonly string _directory;

    private MakeRunProcess(BackgroundProcess make, string directory)
    {
        _make = make;
        _directory = directory;
    }

    /// <summary>Everything make and the server printed so far.</summary>
    public IReadOnlyList<string> Lines => _make.Lines;

    /// <summary>
    /// Starts <c>make run</c> with var/ in <paramref name="directory"/> and the extra
    /// make arguments <paramref name="makeArgs"/>, and waits until it printed the attach
    /// hints of every instance in <paramref name="instances"/>.
    /// </summary>
    public static MakeRunProcess Start(string directory, IEnumerable<string> makeArgs, IReadOnlyList<string> instances)
    {
        _ = ServerProcess.BinaryPath; // fails the test, saying to build, when there is no server
        // The MAKEFLAGS of a surrounding `make test` (jobserver, variables) are not this make's.
        // SIGINT is reset to its default action because a test run started in the background
        // of a shell has it ignored, inherited by every child, and the server would ignore Ctrl-C.
        string[] args = ["--default-signal=INT", "-u", "MAKEFLAGS", "-u", "MAKELEVEL", "-u", "MFLAGS", Make.Path, "--no-print-directory",
                         "-C", ServerProcess.RepositoryRoot, "-o", "build", "run", $"RUN_DIR={directory}", .. makeArgs];
        var run = new MakeRunProcess(BackgroundProcess.Start("/usr/bin/env", args), directory);
        try
        {
            // The last hint line of the last instance: the hints are printed once all listen.
            string last = instances[^1];
            run._make.WaitFor($"the attach hints of {string.Join(", ", instances)}",
                lines => lines.Any(l => l.StartsWith("  nbd-client ", StringComparison.Ordinal) && l.Contains($" -N {last} ", StringComparison.Ordinal)),
                StartTimeout);
            return run;
        }
        catch
        {
            run.Dispose();
            throw;
        }
    }

    /// <summary>The hint line for <paramref name="export"/> that starts with <paramref name="prefix"/>, without its indent.</summary>
    public string Hint(string export, string prefix)
    {
        var lines = Lines;
        int header = lines.ToList().IndexOf($"export '{export}':");
        Assert.That(header, Is.Not.Negative, $"no hints for export '{export}'\n{this}");
        var hint = lines.Skip(header + 1).TakeWhile(l => l.StartsWith("  ", StringComparison.Ordinal))
            .Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.That(hint, Is.Not.Null, $"no hint starting with '{prefix}' for export '{export}'\n{this}");
        return hint!;
    }

    /// <summary>Ctrl-C's SIGINT to the server; returns make's exit code, which is the server's.</summary>
    public int Interrupt()
    {
        int server = ServerPid();
        var kill = Tool.Run("/bin/kill", ["-INT", server.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10));
        Assert.That(kill.ExitCode, Is.Zero, kill.ToString);
        Assert.That(_make.WaitForExit(StopTimeout), Is.True, $"make run was still running {StopTimeout.TotalSeconds} s after SIGINT\n{this}");
        return _make.ExitCode;
    }

    public override string ToString() => _make.ToString();

    public void Dispose() => _make.Dispose();

    /// <summary>The server make started: bin/blockoverlay running in the test's directory.</summary>
    private int ServerPid()
    {
        string binary = ServerProcess.BinaryPath;
        var pids = Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out int pid) ? pid : 0)
            .Where(pid => pid > 0 && LinkTarget(pid, "exe") == binary && LinkTarget(pid, "cwd") == _directory)
            .ToList();
        Assert.That(pids, Has.Count.EqualTo(1), $"expected one {binary} running in {_directory}\n{this}");
        return pids[0];
    }

    /// <summary>Where /proc/PID/NAME points; null for a process that is gone or not ours to see.</summary>
    private static string? LinkTarget(int pid, string name)
    {
        try
        {
            return File.ResolveLinkTarget($"/proc/{pid}/{name}", returnFinalTarget: false)?.FullName;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
