namespace BlockOverlay.Host.Demo;

/// <summary>
/// The files of the demo base image, written to a directory that <c>mkfs.ext4 -d</c> then
/// copies into the image: a README saying what the disk is, an os-release so a guest or a
/// mount shows whose disk it is, and pseudo-random data so block status has data to report.
/// The same bytes every time (fixed seed), so every demo base holds the same files.
/// </summary>
internal static class DemoTree
{
    private const int Seed = 10809;

    private const string Readme = """
        BlockOverlay demo disk
        ======================

        This ext4 file system is the base image demo-base.ext4 that `make run` made in
        var/. Two instances, demo1 and demo2, start as this same image and share it,
        read-only. What a client writes goes to its instance's own copy-on-write data in
        var/store: the other instance and the base never see it, and a flush makes only
        that instance's writes durable.

        Try it: mount demo1 in a guest (the qemu command `make run` prints), change a file,
        sync, and look at the same file on demo2. `nbdinfo --map=blockoverlay:layer` on an
        instance shows which ranges come from its own data (upper) and which from the base.

        data/random.bin is pseudo-random bytes, so the base has data that shows as such.

        """;

    private const string OsRelease = """
        PRETTY_NAME="BlockOverlay demo disk"
        NAME="BlockOverlay demo"
        ID=blockoverlay-demo
        VERSION_ID=1

        """;

    /// <summary>Writes the tree into <paramref name="root"/> (created; it must not hold other files).</summary>
    public static void Write(string root, int randomBytes)
    {
        Directory.CreateDirectory(Path.Combine(root, "etc"));
        Directory.CreateDirectory(Path.Combine(root, "data"));
        File.WriteAllText(Path.Combine(root, "README"), Readme);
        File.WriteAllText(Path.Combine(root, "etc", "os-release"), OsRelease);
        File.WriteAllText(Path.Combine(root, "etc", "hostname"), "demo\n");
        File.WriteAllBytes(Path.Combine(root, "data", "random.bin"), RandomBytes(randomBytes));
    }

    private static byte[] RandomBytes(int count)
    {
        var random = new Random(Seed);
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
