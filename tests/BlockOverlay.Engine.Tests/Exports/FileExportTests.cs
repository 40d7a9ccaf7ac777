using System.Diagnostics;
using System.Globalization;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Tests.Exports;

public sealed class FileExportTests
{
    private const int Block = 64 << 10;
    private TempDirectory _directory = null!;

    [SetUp]
    public void CreateDirectory() => _directory = new TempDirectory();

    [TearDown]
    public void RemoveDirectory() => _directory.Dispose();

    [Test]
    public async Task The_size_is_the_file_length()
    {
        string path = _directory.CreateSparseFile("odd.img", 3 * Block + 512);

        await using FileExport export = FileExport.Open(path);

        Assert.Multiple(() =>
        {
            Assert.That(export.Size, Is.EqualTo(3 * Block + 512));
            Assert.That(export.Description, Is.EqualTo(path));
        });
    }

    [Test]
    public async Task Writes_reach_the_file()
    {
        string path = _directory.CreateSparseFile("disk.img", 4 * Block);
        byte[] data = [1, 2, 3, 4, 5];

        await using (FileExport export = FileExport.Open(path))
        {
            await export.WriteAsync(Block + 7, data, WriteFlags.Fua);
        }

        byte[] file = await File.ReadAllBytesAsync(path);
        Assert.That(file.AsSpan(Block + 7, 5).ToArray(), Is.EqualTo(data));
    }

    [Test]
    public async Task A_read_only_export_says_so_and_refuses_every_change()
    {
        string path = _directory.CreateSparseFile("ro.img", 4 * Block);
        await File.WriteAllBytesAsync(path, Enumerable.Repeat((byte)6, 4 * Block).ToArray());

        await using (FileExport export = FileExport.Open(path, readOnly: true))
        {
            Assert.Multiple(() =>
            {
                Assert.That(export.Capabilities, Is.EqualTo(
                    ExportCapabilities.ReadOnly | ExportCapabilities.Flush | ExportCapabilities.Cache | ExportCapabilities.MultiConn));
                AssertReadOnly(async () => await export.WriteAsync(0, new byte[512], WriteFlags.None));
                AssertReadOnly(async () => await export.TrimAsync(0, Block, WriteFlags.None));
                AssertReadOnly(async () => await export.ZeroAsync(0, Block, ZeroFlags.None));
            });

            byte[] back = new byte[Block];
            await export.ReadAsync(Block, back);
            Assert.That(back, Is.All.EqualTo(6));
        }

        Assert.That(await File.ReadAllBytesAsync(path), Is.All.EqualTo(6));

        static void AssertReadOnly(AsyncTestDelegate action) =>
            Assert.That(action, Throws.TypeOf<ExportException>().With.Property(nameof(ExportException.Error)).EqualTo(ExportError.ReadOnly));
    }

    [Test]
    public async Task A_read_the_page_cache_holds_completes_on_the_callers_thread_and_the_rest_comes_from_the_disk()
    {
        // 1. A file of distinct bytes, on the disk and then dropped from the page cache (GNU dd's
        // "iflag=nocache count=0" advises DONTNEED for the whole file; clean pages go).
        byte[] data = new byte[8 * Block];
        new Random(13).NextBytes(data);
        string path = Path.Combine(_directory.FullPath, "cached.img");
        using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
        {
            file.Write(data);
            file.Flush(flushToDisk: true);
        }

        Run("dd", $"if={path}", "iflag=nocache", "count=0", "status=none");
        await using FileExport export = FileExport.Open(path, readOnly: true);

        // 2. Nothing cached, then a third cached (read once): a read across all of it is whole and right.
        byte[] whole = new byte[8 * Block];
        await export.ReadAsync(0, whole);
        Assert.That(whole, Is.EqualTo(data));
        Run("dd", $"if={path}", "iflag=nocache", "count=0", "status=none");
        await export.ReadAsync(2 * Block, new byte[3 * Block]);
        Array.Clear(whole);
        await export.ReadAsync(Block / 2, whole.AsMemory(0, 7 * Block));
        Assert.That(whole.AsSpan(0, 7 * Block).SequenceEqual(data.AsSpan(Block / 2, 7 * Block)), "a read partly in the page cache");

        // 3. Read again, it is cached: the read completes before it returns, on this thread.
        byte[] again = new byte[3 * Block];
        var read = export.ReadAsync(2 * Block, again);
        Assert.That(read.IsCompletedSuccessfully, Is.True, "a cached read goes to no pool thread");
        await read;
        Assert.That(again.AsSpan().SequenceEqual(data.AsSpan(2 * Block, 3 * Block)));
    }

    [Test]
    public async Task A_flush_of_a_read_only_export_has_nothing_to_make_durable_and_asks_nothing_of_the_disk()
    {
        // Nothing is written through a read-only export, so FLUSH has no write to make durable.
        // An fdatasync there only waited on the file system (seconds on a busy disk, on a
        // pool thread). /dev/null shows whether one is made: fdatasync on it fails with EINVAL.
        await using FileExport export = FileExport.Open("/dev/null", readOnly: true);
        Assert.That(async () => await export.FlushAsync(), Throws.Nothing);
    }

    [Test]
    public void Opening_a_missing_file_fails_with_file_not_found() =>
        Assert.That(() => FileExport.Open(Path.Combine(_directory.FullPath, "missing.img")), Throws.InstanceOf<FileNotFoundException>());

    [Test]
    public async Task A_writable_export_holds_the_file_exclusively()
    {
        string path = _directory.CreateSparseFile("disk.img", Block);
        await using FileExport export = FileExport.Open(path);

        Assert.Multiple(() =>
        {
            Assert.That(() => FileExport.Open(path), Throws.InstanceOf<IOException>());
            Assert.That(() => FileExport.Open(path, readOnly: true), Throws.InstanceOf<IOException>());
        });
    }

    [Test]
    public async Task Read_only_exports_of_one_file_may_coexist()
    {
        string path = _directory.CreateSparseFile("disk.img", Block);

        await using FileExport first = FileExport.Open(path, readOnly: true);
        await using FileExport second = FileExport.Open(path, readOnly: true);

        Assert.That(second.Size, Is.EqualTo(first.Size));
    }

    [Test]
    public async Task Zero_with_NoHole_keeps_the_blocks_allocated_and_without_it_frees_them()
    {
        string path = _directory.CreateSparseFile("disk.img", 8 * Block);
        await using FileExport export = FileExport.Open(path);
        await export.WriteAsync(0, Filled(8 * Block, 1), WriteFlags.Fua);
        long written = AllocatedBytes(path);

        await export.ZeroAsync(0, 4 * Block, ZeroFlags.NoHole | ZeroFlags.Fua);
        long afterNoHole = AllocatedBytes(path);
        await export.ZeroAsync(4 * Block, 4 * Block, ZeroFlags.Fua);
        long afterPunch = AllocatedBytes(path);

        Assert.Multiple(() =>
        {
            Assert.That(written, Is.GreaterThanOrEqualTo(8 * Block));
            Assert.That(afterNoHole, Is.EqualTo(written));
            Assert.That(afterPunch, Is.EqualTo(written - 4 * Block));
        });
    }

    [Test]
    public async Task Where_zero_ranges_are_unsupported_NoHole_fast_zero_is_refused_and_changes_nothing()
    {
        using TempDirectory tmpfs = TmpfsDirectory();
        string path = tmpfs.CreateSparseFile("disk.img", 4 * Block);
        await using FileExport export = FileExport.Open(path);
        await export.WriteAsync(0, Filled(4 * Block, 2), WriteFlags.None);

        Assert.That(
            async () => await export.ZeroAsync(Block, Block, ZeroFlags.NoHole | ZeroFlags.FastZero),
            Throws.TypeOf<ExportException>().With.Property(nameof(ExportException.Error)).EqualTo(ExportError.NotSupported));

        byte[] back = new byte[4 * Block];
        await export.ReadAsync(0, back);
        Assert.That(back, Is.All.EqualTo(2));
    }

    [Test]
    public async Task Where_zero_ranges_are_unsupported_NoHole_zero_writes_zeros()
    {
        using TempDirectory tmpfs = TmpfsDirectory();
        string path = tmpfs.CreateSparseFile("disk.img", 4 * Block);
        await using FileExport export = FileExport.Open(path);
        await export.WriteAsync(0, Filled(4 * Block, 2), WriteFlags.None);

        await export.ZeroAsync(Block - 1, 2 * Block + 2, ZeroFlags.NoHole);

        byte[] back = new byte[4 * Block];
        await export.ReadAsync(0, back);
        var extents = new List<Extent>();
        await export.GetAllocationAsync(0, 4 * Block, 8, extents);
        Assert.Multiple(() =>
        {
            Assert.That(back[..(Block - 1)], Is.All.EqualTo(2));
            Assert.That(back[(Block - 1)..(3 * Block + 1)], Is.All.EqualTo(0));
            Assert.That(back[(3 * Block + 1)..], Is.All.EqualTo(2));
            Assert.That(extents, Is.EqualTo(new[] { new Extent(4 * Block, ExtentState.Data) }), "the zeros were written, not punched");
        });
    }

    /// <summary>A directory on /dev/shm (tmpfs: punches holes, has no zero ranges), or the test is skipped.</summary>
    private static TempDirectory TmpfsDirectory()
    {
        bool tmpfs = File.Exists("/proc/mounts") && File.ReadLines("/proc/mounts")
            .Select(line => line.Split(' '))
            .Any(fields => fields.Length > 2 && fields[1] == "/dev/shm" && fields[2] == "tmpfs");
        if (!tmpfs)
        {
            Assert.Ignore("/dev/shm is not a tmpfs here.");
        }

        return new TempDirectory("/dev/shm");
    }

    private static void Run(string program, params string[] arguments)
    {
        using Process process = Process.Start(new ProcessStartInfo(program, arguments)) ?? throw new InvalidOperationException($"{program} did not start");
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, $"{program} {string.Join(' ', arguments)} failed");
    }

    /// <summary>Bytes the file system allocated to the file (st_blocks × 512), from stat(1).</summary>
    private static long AllocatedBytes(string path)
    {
        var start = new ProcessStartInfo("stat", ["-c", "%b", path]) { RedirectStandardOutput = true };
        using Process process = Process.Start(start) ?? throw new InvalidOperationException("stat did not start");
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.That(process.ExitCode, Is.Zero, "stat -c %b failed");
        return long.Parse(output.Trim(), CultureInfo.InvariantCulture) * 512;
    }

    private static byte[] Filled(int length, byte value)
    {
        byte[] bytes = new byte[length];
        bytes.AsSpan().Fill(value);
        return bytes;
    }
}
