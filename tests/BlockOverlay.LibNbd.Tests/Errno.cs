namespace BlockOverlay.LibNbd.Tests;

/// <summary>Linux errno values the tests expect from libnbd and nbdkit.</summary>
internal static class Errno
{
    public const int ENOENT = 2;
    public const int EINVAL = 22;
}
