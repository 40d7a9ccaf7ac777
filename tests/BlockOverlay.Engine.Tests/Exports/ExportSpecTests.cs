using System.Text;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Tests.Exports;

public sealed class ExportSpecTests
{
    [Test]
    public void Parses_a_memory_export()
    {
        ExportSpec spec = ExportSpec.Parse("scratch=memory:64M");

        Assert.That(spec, Is.EqualTo(new MemoryExportSpec("scratch", new ByteSize(64L << 20))));
    }

    [TestCase("img=file:/var/disk.img", "img", "/var/disk.img", false)]
    [TestCase("img=file:/var/disk.img:ro", "img", "/var/disk.img", true)]
    [TestCase("img=file:relative.img", "img", "relative.img", false)]
    [TestCase("a b=file:/x:y/z=w.img:ro", "a b", "/x:y/z=w.img", true)]
    [TestCase("ünï cødé=file:/d", "ünï cødé", "/d", false)]
    public void Parses_a_file_export(string text, string name, string path, bool readOnly)
    {
        ExportSpec spec = ExportSpec.Parse(text);

        Assert.That(spec, Is.EqualTo(new FileExportSpec(name, path, readOnly)));
    }

    [TestCase("", "not an export")]
    [TestCase("memory:64M", "not an export")]
    [TestCase("=memory:64M", "name")]
    [TestCase("a\tb=memory:64M", "name")]
    [TestCase("a\u007fb=memory:64M", "name")]
    [TestCase("a\0b=memory:64M", "name")]
    [TestCase("disk=memory", "size")]
    [TestCase("disk=memory:", "size")]
    [TestCase("disk=memory:0", "zero")]
    [TestCase("disk=memory:-1G", "negative")]
    [TestCase("disk=memory:lots", "size")]
    [TestCase("disk=memory:1Q", "size")]
    [TestCase("disk=disk:64M", "'disk' in export")]
    [TestCase("disk=Memory:64M", "'Memory' in export")]
    [TestCase("disk=", "'' in export")]
    [TestCase("disk=file", "no path")]
    [TestCase("disk=file:", "no path")]
    [TestCase("disk=file::ro", "no path")]
    [TestCase("disk=file:/a\0b", "NUL")]
    public void Rejects_a_bad_spec_naming_the_bad_part(string text, string part)
    {
        Assert.That(() => ExportSpec.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains(part));
    }

    [Test]
    public void A_name_that_is_not_valid_unicode_is_rejected()
    {
        // Built here: attribute arguments are stored as UTF-8, which cannot hold a lone surrogate.
        string text = "a" + (char)0xD800 + "b=memory:64M";

        Assert.That(() => ExportSpec.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains("Unicode"));
    }

    [Test]
    public void A_name_may_have_4096_bytes_of_UTF8_but_no_more()
    {
        string longest = new('é', 2048);
        string tooLong = longest + "a";

        Assert.Multiple(() =>
        {
            Assert.That(Encoding.UTF8.GetByteCount(longest), Is.EqualTo(4096));
            Assert.That(ExportSpec.Parse(longest + "=memory:1M").Name, Is.EqualTo(longest));
            Assert.That(() => ExportSpec.Parse(tooLong + "=memory:1M"), Throws.TypeOf<FormatException>().With.Message.Contains("4097 bytes"));
            Assert.That(ExportSpec.IsValidName(tooLong, out string? problem), Is.False);
            Assert.That(problem, Does.Contain("4096"));
        });
    }

    [Test]
    public void Specs_print_as_they_are_written()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ExportSpec.Parse("m=memory:1024K").ToString(), Is.EqualTo("m=memory:1M"));
            Assert.That(ExportSpec.Parse("f=file:/a:b:ro").ToString(), Is.EqualTo("f=file:/a:b:ro"));
            Assert.That(ExportSpec.Parse("f=file:/a").ToString(), Is.EqualTo("f=file:/a"));
        });
    }

    [Test]
    public void Constructors_refuse_bad_names_and_sizes()
    {
        Assert.Multiple(() =>
        {
            Assert.That(() => new MemoryExportSpec("", new ByteSize(1)), Throws.InstanceOf<ArgumentException>());
            Assert.That(() => new MemoryExportSpec("m", new ByteSize(0)), Throws.InstanceOf<ArgumentOutOfRangeException>());
            Assert.That(() => new FileExportSpec("f\n", "/a", false), Throws.InstanceOf<ArgumentException>());
            Assert.That(() => new FileExportSpec("f", "", false), Throws.InstanceOf<ArgumentException>());
        });
    }

    [Test]
    public async Task A_memory_spec_opens_a_memory_export_of_its_size()
    {
        await using IExport export = ExportSpec.Parse("m=memory:1T").Open();

        Assert.Multiple(() =>
        {
            Assert.That(export, Is.InstanceOf<MemoryExport>());
            Assert.That(export.Size, Is.EqualTo(1L << 40));
        });
    }

    [Test]
    public async Task A_file_spec_opens_the_file_read_only_when_asked()
    {
        using var directory = new TempDirectory();
        string path = directory.CreateSparseFile("disk.img", 1 << 20);

        await using IExport export = ExportSpec.Parse($"f=file:{path}:ro").Open();

        Assert.Multiple(() =>
        {
            Assert.That(export, Is.InstanceOf<FileExport>());
            Assert.That(export.Size, Is.EqualTo(1 << 20));
            Assert.That(export.Capabilities.HasFlag(ExportCapabilities.ReadOnly), Is.True);
        });
    }
}
