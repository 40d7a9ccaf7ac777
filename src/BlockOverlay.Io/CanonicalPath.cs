using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>
/// The one name of a file: absolute, with every symbolic link and "."/".." resolved, so two
/// paths to one file compare equal (for "is this base image in use?").
/// </summary>
public static class CanonicalPath
{
    /// <summary>
    /// The canonical path of <paramref name="path"/>, resolved as the kernel does (a ".." after a
    /// link leaves the link's target); a path that cannot be resolved (it does not exist, or a
    /// directory on the way is unreadable) stays as its absolute form.
    /// </summary>
    public static string Of(string path)
    {
        nint resolved = LibC.realpath(path, 0);
        if (resolved == 0)
        {
            return Path.GetFullPath(path);
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved) ?? Path.GetFullPath(path);
        }
        finally
        {
            LibC.free(resolved);
        }
    }

    /// <summary>Whether two paths name one file (by their canonical paths).</summary>
    public static bool SameFile(string? a, string? b) =>
        a is not null && b is not null && (a == b || Of(a) == Of(b));
}
