using System.Diagnostics;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// The host kernel's ext4 over an export, without the kernel's nbd module: nbdfuse serves
/// the export as a file in a FUSE mount, a loop device makes that file a block device, and
/// the kernel mounts it. A flush from the file system travels loop → fsync of the FUSE file
/// → nbdfuse → NBD FLUSH. Whatever was set up is undone in reverse order on Dispose, each
/// step with a deadline, also when the test failed or the server died under the mount.
/// </summary>
internal sealed class Ext4OverNbdfuse : IDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(20);

    private readonly string _fuseDirectory;
    private BackgroundProcess? _nbdfuse;
    private string? _loopDevice;
    private bool _mounted;

    private Ext4OverNbdfuse(string directory)
    {
        _fuseDirectory = Path.Combine(directory, "fuse");
        MountPoint = Path.Combine(directory, "mnt");
    }

    /// <summary>Where the file system is mounted.</summary>
    public string MountPoint { get; }

    /// <summary>Mounts the ext4 file system of the export at <paramref name="uri"/>, of <paramref name="size"/> bytes, under <paramref name="directory"/>.</summary>
    public static Ext4OverNbdfuse Mount(string uri, string directory, long size)
    {
        var mount = new Ext4OverNbdfuse(directory);
        try
        {
            mount.Attach(uri, size);
            return mount;
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The clean way down, each step required to succeed: umount (the kernel writes back and
    /// closes its journal), detach the loop device, unmount FUSE, and nbdfuse exits by itself.
    /// </summary>
    public void Unmount()
    {
        HostTool.Umount.RunOk(MountPoint);
        _mounted = false;
        HostTool.Losetup.RunOk("-d", _loopDevice!);
        _loopDevice = null;
        HostTool.Fusermount.RunOk("-u", _fuseDirectory);
        Assert.That(_nbdfuse!.WaitForExit(StepTimeout), Is.True, () => $"nbdfuse did not exit once unmounted\n{_nbdfuse}");
        _nbdfuse.Dispose();
        _nbdfuse = null;
    }

    /// <summary>Best effort: every step is tried whatever happened to the one before, so nothing stays mounted or attached.</summary>
    public void Dispose()
    {
        if (_mounted && !TryRun(HostTool.Umount, MountPoint))
        {
            // A umount stuck on FUSE requests nobody answers: killing nbdfuse fails them, then detach lazily.
            _nbdfuse?.Kill();
            TryRun(HostTool.Umount, "-l", MountPoint);
        }

        if (_loopDevice is not null)
        {
            TryRun(HostTool.Losetup, "-d", _loopDevice);
        }

        if (_nbdfuse is not null)
        {
            if (!TryRun(HostTool.Fusermount, "-u", _fuseDirectory))
            {
                TryRun(HostTool.Fusermount, "-u", "-z", _fuseDirectory);
            }

            TestContext.Out.WriteLine(_nbdfuse.ToString());
            _nbdfuse.Dispose();
        }
    }

    private void Attach(string uri, long size)
    {
        Directory.CreateDirectory(_fuseDirectory);
        Directory.CreateDirectory(MountPoint);
        var disk = Path.Combine(_fuseDirectory, "disk");
        _nbdfuse = BackgroundProcess.Start(HostTool.Nbdfuse.Path, [disk, uri]);
        WaitForFile(disk, size);
        _loopDevice = HostTool.Losetup.RunOk("-f", "--show", disk).Stdout.Trim();
        HostTool.Mount.RunOk("-t", "ext4", _loopDevice, MountPoint);
        _mounted = true;
    }

    /// <summary>nbdfuse runs in the foreground and connects before it mounts: wait until the file shows the export.</summary>
    private void WaitForFile(string disk, long size)
    {
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(disk) && new FileInfo(disk).Length == size))
        {
            if (_nbdfuse!.HasExited || clock.Elapsed > StepTimeout)
            {
                Assert.Fail($"nbdfuse did not show {disk} with {size} bytes\n{_nbdfuse}");
            }

            Thread.Sleep(20);
        }
    }

    /// <summary>Runs a clean-up step; a failure or a hang is logged, not thrown, so the next step still runs.</summary>
    private static bool TryRun(ClientTool tool, params string[] args)
    {
        using var step = BackgroundProcess.Start(tool.Path, args);
        var ok = step.WaitForExit(StepTimeout) && step.ExitCode == 0;
        if (!ok)
        {
            TestContext.Out.WriteLine($"clean-up step failed: {step}");
        }

        return ok;
    }
}
