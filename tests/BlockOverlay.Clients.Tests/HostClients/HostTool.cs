using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>The host's own programs these tests drive besides the NBD clients.</summary>
internal static class HostTool
{
    public static readonly ClientTool Nbdfuse = new("nbdfuse", "libnbd-bin");
    public static readonly ClientTool Fusermount = new("fusermount3", "fuse3");
    public static readonly ClientTool Losetup = new("losetup", "mount");
    public static readonly ClientTool Mount = new("mount", "mount");
    public static readonly ClientTool Umount = new("umount", "mount");
    public static readonly ClientTool MkfsExt4 = new("mkfs.ext4", "e2fsprogs");
    public static readonly ClientTool E2fsck = new("e2fsck", "e2fsprogs");
    public static readonly ClientTool Debugfs = new("debugfs", "e2fsprogs");
    public static readonly ClientTool Dd = new("dd", "coreutils");
    public static readonly ClientTool Stdbuf = new("stdbuf", "coreutils");

    /// <summary>Runs the tool and fails the test unless it exits 0.</summary>
    public static ToolResult RunOk(this ClientTool tool, params string[] args)
    {
        var result = tool.Run(args, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, result.ToString);
        return result;
    }
}
