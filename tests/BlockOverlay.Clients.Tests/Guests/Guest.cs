using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// One test guest: qemu-system-x86_64 under TCG (KVM is not usable on these machines)
/// booting the <see cref="GuestKit"/>'s kernel and initramfs. The guest's /e2e/run.sh runs
/// the script named on the kernel command line, ends with the line E2E-PASS or E2E-FAIL and
/// powers off, so qemu exits by itself. The serial console is qemu's stdout, kept (with
/// qemu's stderr) for the test and for failure messages. Every guest has a hard deadline
/// from its start; one still running at the deadline, or at disposal, is killed by PID.
/// </summary>
internal sealed class Guest : IDisposable
{
    /// <summary>Generous: a boot takes about 7 s here, a whole test script about 10.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(120);

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);

    private readonly string _name;
    private readonly Process _process;
    private readonly StringBuilder _console = new();
    private readonly Evidence _evidence;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private bool _disposed;

    private Guest(string name, Evidence evidence, string commandLine, IEnumerable<string> devices)
    {
        _name = name;
        _evidence = evidence;
        var kit = GuestKit.Current;
        string[] machine =
        [
            "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "512",
            "-display", "none", "-nodefaults", "-no-user-config", "-no-reboot", "-serial", "stdio",
            "-kernel", kit.Kernel, "-initrd", kit.Initramfs,
            // panic=-1: a guest whose init dies reboots at once, and -no-reboot makes that an exit.
            "-append", $"console=ttyS0 panic=-1 loglevel=4 {commandLine}",
        ];
        _process = new Process { StartInfo = Redirected.StartInfo(GuestKit.Qemu.Path, machine.Concat(devices)) };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        evidence.Add($"guest {name} console", () => Console);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        TestContext.Out.WriteLine($"guest {name}: qemu pid {_process.Id}, kernel command line: {commandLine}");
    }

    /// <summary>Everything the guest printed so far.</summary>
    public string Console
    {
        get
        {
            lock (_console)
            {
                return _console.ToString();
            }
        }
    }

    /// <summary>
    /// A guest whose root file system is the export <paramref name="export"/>, a virtio disk
    /// (with a volatile write cache, so the guest's fsyncs arrive as FLUSH) reached over the
    /// server's unix socket; it runs /e2e/<paramref name="script"/>.sh from that file system.
    /// </summary>
    public static Guest BootFromExport(string socketPath, string export, Evidence evidence, string script, params string[] args) =>
        new(
            export,
            evidence,
            $"e2e_root=vda {ScriptParameters(script, args)}",
            [
                "-blockdev", $"driver=nbd,server.type=unix,server.path={socketPath},export={export},node-name=d0",
                "-device", "virtio-blk-pci,drive=d0,write-cache=on",
            ]);

    /// <summary>
    /// A guest that stays in its initramfs with a network card whose 10.0.2.100:10809 reaches
    /// the server's 127.0.0.1:<paramref name="serverPort"/> (one busybox nc relay per
    /// connection, so several connections work); it runs /e2e/<paramref name="script"/>.sh.
    /// </summary>
    public static Guest BootWithNetwork(string name, int serverPort, Evidence evidence, string script, params string[] args) =>
        new(
            name,
            evidence,
            $"e2e_root=initramfs {ScriptParameters(script, args)}",
            [
                "-netdev", string.Create(CultureInfo.InvariantCulture,
                    $"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:10809-cmd:/bin/busybox nc 127.0.0.1 {serverPort}"),
                "-device", "virtio-net-pci,netdev=n0",
            ]);

    /// <summary>Waits until the guest prints <paramref name="line"/>; fails the test if it powers off or the deadline passes first.</summary>
    public void WaitForLine(string line)
    {
        while (!Printed(line))
        {
            if (_process.HasExited)
            {
                _process.WaitForExit();
                if (Printed(line))
                {
                    return;
                }

                Assert.Fail($"guest {_name} powered off without printing \"{line}\"\n{_evidence}");
            }

            FailPastDeadline($"printed \"{line}\"");
            Thread.Sleep(Poll);
        }
    }

    /// <summary>Waits until the guest powers off, fails the test unless its script passed, and returns what it reported.</summary>
    public GuestReport WaitForPowerOff()
    {
        while (!_process.HasExited)
        {
            FailPastDeadline("powered off");
            Thread.Sleep(Poll);
        }

        _process.WaitForExit(); // drains the console
        TestContext.Out.WriteLine($"guest {_name}: powered off after {_clock.Elapsed.TotalSeconds:F1} s");
        Assert.That(Printed("E2E-PASS"), Is.True, () => $"guest {_name} did not pass its script (qemu exit {_process.ExitCode})\n{_evidence}");
        return Report();
    }

    /// <summary>What the guest reported so far.</summary>
    public GuestReport Report() => GuestReport.Parse(Lines);

    /// <summary>SIGKILL to qemu, at once.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            Append($"[test] killing qemu (pid {_process.Id})");
            _process.Kill();
        }

        _process.WaitForExit();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Kill();
        TestContext.Out.WriteLine($"--- guest {_name} console ---");
        TestContext.Out.WriteLine(Console);
        _process.Dispose();
    }

    private string[] Lines => Console.Split('\n');

    /// <summary>Whether a line holds <paramref name="text"/>: kernel messages may share the line.</summary>
    private bool Printed(string text) => Lines.Any(l => l.Contains(text, StringComparison.Ordinal));

    private static string ScriptParameters(string script, string[] args) =>
        args.Length == 0 ? $"e2e_script={script}" : $"e2e_script={script} e2e_args={string.Join(',', args)}";

    private void FailPastDeadline(string what)
    {
        if (_clock.Elapsed > Deadline)
        {
            Kill();
            Assert.Fail($"guest {_name} had not {what} after {Deadline.TotalSeconds} s and was killed\n{_evidence}");
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_console)
        {
            // The serial console ends lines with CR LF.
            _console.Append(line.TrimEnd('\r')).Append('\n');
        }
    }
}
