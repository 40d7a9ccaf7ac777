using System.Diagnostics;

namespace BlockOverlay.Clients.Tests.Fixtures;

/// <summary>
/// A program left running while the test goes on (qemu-io holding its connection open,
/// nbdfuse serving a mount). Its stdout and stderr lines are collected as they come and the
/// test waits for the ones it needs. It runs with <see cref="Tool.SystemPath"/>, like every
/// tool here, and is killed by its own PID when disposed, so a failing test leaves nothing
/// behind.
/// </summary>
internal sealed class BackgroundProcess : IDisposable
{
    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly string _commandLine;
    private readonly List<string> _lines = [];

    private BackgroundProcess(Process process, string commandLine)
    {
        _process = process;
        _commandLine = commandLine;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The exit code, once <see cref="HasExited"/>.</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>The lines printed so far, stdout and stderr interleaved as they arrived.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>Starts <paramref name="file"/> with <paramref name="args"/>; its stdin is closed at once.</summary>
    public static BackgroundProcess Start(string file, IEnumerable<string> args)
    {
        var startInfo = Redirected.StartInfo(file, args);

        startInfo.Environment["PATH"] = Tool.SystemPath;
        var commandLine = string.Join(' ', startInfo.ArgumentList.Prepend(file));
        var process = Process.Start(startInfo) ?? throw new InvalidOperationException($"could not start {commandLine}");
        process.StandardInput.Close();
        return new BackgroundProcess(process, commandLine);
    }

    /// <summary>
    /// Waits until <paramref name="done"/> holds for the lines printed so far. Fails the test,
    /// saying <paramref name="what"/> was awaited, if the program exits or the time runs out first.
    /// </summary>
    public void WaitFor(string what, Func<IReadOnlyList<string>, bool> done, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        lock (_lines)
        {
            while (!done(_lines))
            {
                if (_process.HasExited || clock.Elapsed > timeout)
                {
                    Assert.Fail($"waited for {what}, but {(_process.HasExited ? "the program exited" : $"{timeout.TotalSeconds} s passed")}\n{Describe()}");
                }

                Monitor.Wait(_lines, TimeSpan.FromMilliseconds(50));
            }
        }
    }

    /// <summary>Waits for the program to exit by itself; false if it is still running after <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout) => _process.WaitForExit(timeout);

    /// <summary>SIGKILL (the program has no chance to clean up or close anything), then waits for the exit.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        _process.WaitForExit(KillTimeout);
    }

    public override string ToString() => Describe();

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private string Describe()
    {
        var state = _process.HasExited ? $"exited with {_process.ExitCode}" : $"still running as pid {_process.Id}";
        return $"`{_commandLine}` {state}\n--- output ---\n{string.Join('\n', Lines)}";
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            _lines.Add(line);
            Monitor.PulseAll(_lines);
        }
    }
}
