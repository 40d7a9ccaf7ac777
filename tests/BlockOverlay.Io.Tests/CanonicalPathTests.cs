namespace BlockOverlay.Io.Tests;

/// <summary>Paths through symbolic links (to the file or to a directory on the way) resolve to one name.</summary>
[TestFixture]
public sealed class CanonicalPathTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-paths-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void Links_to_a_file_or_to_its_directory_name_the_same_file()
    {
        string real = Path.Combine(_directory, "images", "rootfs.raw");
        Directory.CreateDirectory(Path.GetDirectoryName(real)!);
        File.WriteAllText(real, "x");
        string fileLink = Path.Combine(_directory, "link.raw");
        File.CreateSymbolicLink(fileLink, real);
        string directoryLink = Path.Combine(_directory, "imgs");
        Directory.CreateSymbolicLink(directoryLink, Path.Combine(_directory, "images"));

        Assert.That(CanonicalPath.Of(fileLink), Is.EqualTo(CanonicalPath.Of(real)));
        Assert.That(CanonicalPath.SameFile(Path.Combine(directoryLink, "rootfs.raw"), fileLink), Is.True);
        Assert.That(CanonicalPath.SameFile(Path.Combine(_directory, "images", "..", "images", "rootfs.raw"), real), Is.True);
        Assert.That(CanonicalPath.SameFile(real, Path.Combine(_directory, "other.raw")), Is.False);
        Assert.That(CanonicalPath.SameFile(real, null), Is.False);
    }

    [Test]
    public void A_path_that_does_not_resolve_stays_absolute()
    {
        string missing = Path.Combine(_directory, "gone", "disk.raw");
        Assert.That(CanonicalPath.Of(missing), Is.EqualTo(missing));
        Assert.That(CanonicalPath.Of(Path.GetRelativePath(Environment.CurrentDirectory, missing)), Is.EqualTo(missing));
    }
}
