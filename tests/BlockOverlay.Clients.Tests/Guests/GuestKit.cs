using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// What every test guest boots, built from Debian's packages by the scripts of tests/e2e/:
/// the kernel, the initramfs (busybox, modules, nbd-client, mkfs.ext4) and the ext4 base
/// image holding busybox and the guest scripts. Built once per test run by
/// <see cref="GuestSetup"/>, since building takes a second and every guest test needs it.
/// </summary>
internal sealed record GuestKit(string Kernel, string Initramfs, string BaseImage, string BaseImageSha256)
{
    public static readonly ClientTool Qemu = new("qemu-system-x86_64", "qemu-system-x86");
    public static readonly ClientTool Debugfs = new("debugfs", "e2fsprogs");
    public static readonly ClientTool E2fsck = new("e2fsck", "e2fsprogs");

    private static readonly TimeSpan BuildTimeout = TimeSpan.FromMinutes(2);

    /// <summary>The kit of this test run.</summary>
    public static GuestKit Current => GuestSetup.Kit ?? throw new InvalidOperationException("the guest kit is built by GuestSetup");

    /// <summary>Builds the kit into <paramref name="directory"/>; ignores the calling tests when a package is missing.</summary>
    public static GuestKit Build(string directory)
    {
        RequireTools();
        var e2e = Path.Combine(ServerProcess.RepositoryRoot, "tests", "e2e");
        var baseImage = Path.Combine(directory, "base.raw");
        RunScript(Path.Combine(e2e, "build-initramfs.sh"), directory);
        RunScript(Path.Combine(e2e, "build-rootfs.sh"), baseImage);
        return new GuestKit(
            Path.Combine(directory, "vmlinuz"),
            Path.Combine(directory, "initramfs.cpio.gz"),
            baseImage,
            StoreWorkspace.Sha256(baseImage));
    }

    private static void RequireTools()
    {
        _ = Qemu.Path;
        _ = Debugfs.Path;
        _ = E2fsck.Path;
        _ = new ClientTool("busybox", "busybox-static").Path;
        _ = new ClientTool("nbd-client", "nbd-client").Path;
        _ = new ClientTool("mkfs.ext4", "e2fsprogs").Path;
        if (Directory.GetFiles("/boot", "vmlinuz-*-amd64").Length == 0)
        {
            Assert.Ignore("no /boot/vmlinuz-*-amd64: the guests' kernel comes with the Debian package linux-image-amd64 (`make deps` installs it)");
        }
    }

    private static void RunScript(string script, string argument)
    {
        var result = Tool.Run("/bin/bash", [script, argument], BuildTimeout);
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
    }
}

/// <summary>Builds the <see cref="GuestKit"/> before the first guest test of the run and deletes it after the last.</summary>
[SetUpFixture]
public sealed class GuestSetup
{
    private static ScratchDirectory? s_directory;

    internal static GuestKit? Kit { get; private set; }

    [OneTimeSetUp]
    public void BuildKit()
    {
        s_directory = new ScratchDirectory();
        Kit = GuestKit.Build(s_directory.Path);
    }

    [OneTimeTearDown]
    public void DeleteKit()
    {
        Kit = null;
        s_directory?.Dispose();
        s_directory = null;
    }
}
