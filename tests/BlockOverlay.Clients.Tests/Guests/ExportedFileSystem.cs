using System.Security.Cryptography;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// An ext4 export as another client sees it: the whole disk copied out by nbdcopy into a raw
/// file of the workspace, then checked with e2fsck and read with debugfs on the host.
/// </summary>
internal sealed class ExportedFileSystem
{
    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(60);

    private readonly string _image;
    private readonly StoreWorkspace _workspace;
    private readonly Evidence _evidence;

    private ExportedFileSystem(string image, StoreWorkspace workspace, Evidence evidence)
    {
        _image = image;
        _workspace = workspace;
        _evidence = evidence;
    }

    public static ExportedFileSystem CopyOut(StoreServer server, StoreWorkspace workspace, string export, Evidence evidence)
    {
        var image = workspace[$"{export}-{Guid.NewGuid():N}.raw"];
        var result = ClientTool.Nbdcopy.Run([server.UnixUri(export), image], ToolTimeout);
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{evidence}");
        return new ExportedFileSystem(image, workspace, evidence);
    }

    /// <summary>Fails the test unless a forced read-only e2fsck finds nothing to fix.</summary>
    public void AssertClean()
    {
        var result = GuestKit.E2fsck.Run(["-f", "-n", _image], ToolTimeout);
        Assert.That(result.ExitCode, Is.Zero, () => $"e2fsck found problems in the file system of {_image}\n{result}\n{_evidence}");
    }

    /// <summary>The SHA-256 of the file at <paramref name="path"/> in the file system, or null if it is not there.</summary>
    public string? Sha256(string path)
    {
        if (Dump(path) is not { } file)
        {
            return null;
        }

        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream)); // as sha256sum prints it in the guest
    }

    /// <summary>The text of the file at <paramref name="path"/>, or null if it is not there.</summary>
    public string? ReadText(string path) => Dump(path) is { } file ? File.ReadAllText(file) : null;

    /// <summary>Copies a file out of the image with debugfs (which reports a missing file only on stderr).</summary>
    private string? Dump(string path)
    {
        var file = _workspace[$"dump-{Guid.NewGuid():N}"];
        var result = GuestKit.Debugfs.Run(["-R", $"dump {path} {file}", _image], ToolTimeout);
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{_evidence}");
        return File.Exists(file) ? file : null;
    }
}
