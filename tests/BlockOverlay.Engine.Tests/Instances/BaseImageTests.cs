using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// Base images (DESIGN.md, invariant 8): their identity catches a replaced, resized or edited image; an
/// instance on a changed base refuses to open with a message naming the file while the others
/// serve on; reads past the base's end are zeros; the base is only ever opened read-only and
/// never changes, whatever the instances do.
/// </summary>
[TestFixture]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BaseImageTests
{
    private const int Block = UpperStore.BlockSize;
    private const int MiB = 1 << 20;
    private const int BigSize = (8 * MiB) + 1000; // first MiB, last MiB and samples are all distinct regions
    private const int O_ACCMODE = 3, O_RDONLY = 0;

    /// <summary>The offset of sample <paramref name="i"/> (1..16): "16 evenly spaced 4 KiB samples" of BaseImage's remarks.</summary>
    private static long SampleOffset(long size, int i) => size / 17 * i / 4096 * 4096;

    [Test]
    public async Task The_same_bytes_give_the_same_identity_wherever_they_are()
    {
        using var testBase = await TestBase.CreateAsync(1, BigSize);
        var again = await TestBase.IdentifyAsync(testBase.Path);
        string copy = Path.Combine(testBase.Directory, "copy.img");
        File.Copy(testBase.Path, copy);
        var ofCopy = await TestBase.IdentifyAsync(copy);
        Assert.Multiple(() =>
        {
            Assert.That(again, Is.EqualTo(testBase.Identity));
            Assert.That(testBase.Identity.Path, Is.EqualTo(Path.GetFullPath(testBase.Path)));
            Assert.That(testBase.Identity.Size, Is.EqualTo(BigSize));
            Assert.That((ofCopy.Size, ofCopy.Fingerprint), Is.EqualTo((testBase.Identity.Size, testBase.Identity.Fingerprint)));
        });
    }

    public static IEnumerable<TestCaseData> Changes()
    {
        yield return new TestCaseData("append", -1L).SetName("A_base_with_a_byte_appended_has_another_identity");
        yield return new TestCaseData("truncate", 1L).SetName("A_base_truncated_by_one_byte_has_another_identity");
        yield return new TestCaseData("truncate", (long)Block).SetName("A_base_truncated_by_a_block_has_another_identity");
        yield return new TestCaseData("flip", 0L).SetName("A_base_with_its_first_byte_changed_has_another_identity");
        yield return new TestCaseData("flip", 12345L).SetName("A_base_with_a_byte_changed_in_its_first_MiB_has_another_identity");
        yield return new TestCaseData("flip", BigSize - 777L).SetName("A_base_with_a_byte_changed_in_its_last_MiB_has_another_identity");
        yield return new TestCaseData("flip", BigSize - 1L).SetName("A_base_with_its_last_byte_changed_has_another_identity");
        yield return new TestCaseData("flip", SampleOffset(BigSize, 8) + 100).SetName("A_base_with_a_byte_changed_in_a_sampled_block_has_another_identity");
        yield return new TestCaseData("flip", SampleOffset(BigSize, 4) + 4095).SetName("A_base_with_the_last_byte_of_a_middle_sample_changed_has_another_identity");
    }

    [TestCaseSource(nameof(Changes))]
    public async Task A_changed_base_has_another_identity(string change, long where)
    {
        using var testBase = await TestBase.CreateAsync(2, BigSize);
        Change(testBase.Path, change, where);

        var changed = await TestBase.IdentifyAsync(testBase.Path);

        Assert.That((changed.Size, changed.Fingerprint), Is.Not.EqualTo((testBase.Identity.Size, testBase.Identity.Fingerprint)));
    }

    /// <summary>
    /// The price BaseImage's remarks name: an edit in place that touches no sampled byte goes
    /// unnoticed. This pins down where the samples are (so the sampled-block case above really
    /// tests a sample, not the edges); if the whole image is ever hashed, this test goes.
    /// </summary>
    [Test]
    public async Task An_edit_between_the_samples_goes_unnoticed_as_documented()
    {
        using var testBase = await TestBase.CreateAsync(3, BigSize);
        long between = SampleOffset(BigSize, 8) + Block + 100;
        Assert.That(between, Is.GreaterThan(MiB).And.LessThan(BigSize - MiB).And.LessThan(SampleOffset(BigSize, 9)));
        Change(testBase.Path, "flip", between);

        var changed = await TestBase.IdentifyAsync(testBase.Path);

        Assert.That(changed, Is.EqualTo(testBase.Identity));
    }

    [Test]
    public async Task An_instance_on_a_changed_base_refuses_to_open_naming_the_file_while_the_others_serve()
    {
        using var changedBase = await TestBase.CreateAsync(4, 300 << 10, "changed.img");
        using var otherBase = await TestBase.CreateAsync(5, 200 << 10, "other.img");
        var device = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(device);
        var store = await UpperStore.OpenAsync(device);
        var victim = await store.CreateInstanceAsync("victim", 1 << 20, changedBase.Identity);
        var bystander = await store.CreateInstanceAsync("bystander", 1 << 20, otherBase.Identity);
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using (var export = await InstanceExport.OpenAsync(cache, victim))
        {
            await export.WriteAsync(10, new byte[] { 1, 2, 3 }, WriteFlags.Fua);
        }

        Change(changedBase.Path, "flip", 5000);

        var refused = Assert.ThrowsAsync<BaseImageChangedException>(async () => await InstanceExport.OpenAsync(cache, victim));
        Assert.That(refused!.Message, Does.Contain(changedBase.Path));
        await using (var served = await InstanceExport.OpenAsync(cache, bystander))
        {
            byte[] data = new byte[3 * Block];
            await served.WriteAsync(Block + 7, new byte[] { 9 }, WriteFlags.None);
            await served.ReadAsync(0, data);
            byte[] expected = otherBase.InitialContent(3 * Block);
            expected[Block + 7] = 9;
            Assert.That(data, Is.EqualTo(expected), "the instance on an unchanged base serves on");
        }

        // Also after a restart, and until the original bytes are back.
        await cache.DisposeAsync();
        await store.DisposeAsync();
        store = await UpperStore.OpenAsync(device);
        cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        victim = store.Find("victim")!;
        Assert.ThrowsAsync<BaseImageChangedException>(async () => await InstanceExport.OpenAsync(cache, victim));
        await File.WriteAllBytesAsync(changedBase.Path, changedBase.Bytes);
        await using (var restored = await InstanceExport.OpenAsync(cache, victim))
        {
            byte[] data = new byte[16];
            await restored.ReadAsync(0, data);
            byte[] expected = changedBase.Bytes[..16];
            expected[10] = 1;
            expected[11] = 2;
            expected[12] = 3;
            Assert.That(data, Is.EqualTo(expected), "with the original base back, the instance reads as before");
        }

        await cache.DisposeAsync();
        await store.DisposeAsync();
    }

    [Test]
    public async Task An_instance_whose_base_is_gone_refuses_to_open_naming_the_file()
    {
        using var testBase = await TestBase.CreateAsync(6, 64 << 10);
        var device = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(device);
        await using var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("orphan", 1 << 20, testBase.Identity);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        File.Delete(testBase.Path);

        var refused = Assert.ThrowsAsync<BaseImageChangedException>(async () => await InstanceExport.OpenAsync(cache, instance));

        Assert.That(refused!.Message, Does.Contain(testBase.Path));
    }

    [TestCase(0L, 100)]                     // inside
    [TestCase(BigSize - 10L, 10)]           // up to the end exactly
    [TestCase(BigSize - 10L, 5000)]         // across the end
    [TestCase((long)BigSize, 4096)]         // from the end
    [TestCase(BigSize + 123456L, 9000)]     // far past it
    public async Task A_base_reads_its_bytes_then_zeros_past_its_end(long offset, int length)
    {
        using var testBase = await TestBase.CreateAsync(7, BigSize);
        await using var image = await BaseImage.OpenAsync(testBase.Identity);
        byte[] buffer = new byte[length];
        Array.Fill(buffer, (byte)0xEE);

        await image.ReadAsync(offset, buffer);

        byte[] expected = new byte[length];
        int inside = (int)Math.Clamp(BigSize - offset, 0, length);
        testBase.Bytes.AsSpan((int)Math.Min(offset, BigSize), inside).CopyTo(expected);
        Assert.That(buffer, Is.EqualTo(expected));
    }

    [Test]
    public async Task An_instance_larger_than_its_base_reads_zeros_past_the_base_even_around_partial_writes()
    {
        const int baseSize = (40 * Block) + 1234;
        using var testBase = await TestBase.CreateAsync(8, baseSize);
        var device = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(device);
        await using var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("bigger", 64 * Block, testBase.Identity);
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var export = await InstanceExport.OpenAsync(cache, instance);
        byte[] expected = testBase.InitialContent(64 * Block);

        byte[] all = new byte[64 * Block];
        await export.ReadAsync(0, all);
        Assert.That(all, Is.EqualTo(expected), "before any write");

        // A partial write in the block holding the base's end, and one in the zero tail.
        await export.WriteAsync(baseSize - 3, new byte[] { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 }, WriteFlags.None);
        await export.WriteAsync((50 * Block) + 17, new byte[] { 0x77 }, WriteFlags.Fua);
        new byte[] { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66 }.CopyTo(expected, baseSize - 3);
        expected[(50 * Block) + 17] = 0x77;
        await export.ReadAsync(0, all);
        Assert.That(all, Is.EqualTo(expected), "after partial writes");
    }

    [Test]
    public async Task A_base_is_opened_read_only_and_instances_work_on_a_read_only_file()
    {
        using var testBase = await TestBase.CreateAsync(9, 300 << 10);
        File.SetUnixFileMode(testBase.Path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var device = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(device);
        var store = await UpperStore.OpenAsync(device);
        var instance = await store.CreateInstanceAsync("ro", 1 << 20, testBase.Identity);
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var export = await InstanceExport.OpenAsync(cache, instance);

        // root ignores the mode bits, so look at how the descriptor was really opened.
        var descriptors = OpenDescriptorsOf(testBase.Path);
        Assert.That(descriptors, Is.Not.Empty, "the base should be open while its instance is");
        foreach (var (fd, flags) in descriptors)
        {
            Assert.That(flags & O_ACCMODE, Is.EqualTo(O_RDONLY), $"descriptor {fd} of the base is open with flags 0{Convert.ToString(flags, 8)}");
        }

        byte[] data = new byte[5000];
        new Random(9).NextBytes(data);
        await export.WriteAsync(777, data, WriteFlags.None);
        await export.FlushAsync();
        await export.DisposeAsync();
        await cache.DisposeAsync();
        await store.DisposeAsync();
        Assert.That(OpenDescriptorsOf(testBase.Path), Is.Empty, "the base is closed with its instance");

        store = await UpperStore.OpenAsync(device);
        cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using (var reopened = await InstanceExport.OpenAsync(cache, store.Find("ro")!))
        {
            byte[] back = new byte[8192];
            await reopened.ReadAsync(0, back);
            byte[] expected = testBase.InitialContent(8192);
            data.CopyTo(expected, 777);
            Assert.That(back, Is.EqualTo(expected));
        }

        await cache.DisposeAsync();
        await store.DisposeAsync();
    }

    [Test]
    public async Task A_heavy_write_workload_through_instances_never_changes_the_base_file()
    {
        const int baseSize = (512 << 10) + 333;
        using var testBase = await TestBase.CreateAsync(10, baseSize);
        File.SetLastWriteTimeUtc(testBase.Path, new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc));
        var before = new FileInfo(testBase.Path);
        var (mtime, size) = (before.LastWriteTimeUtc, before.Length);
        byte[] hash = testBase.HashFile();

        var device = new MemoryDevice(32 << 20);
        await UpperStore.CreateAsync(device);
        var store = await UpperStore.OpenAsync(device);
        var rng = new Random(10);
        var exports = new List<InstanceExport>();
        // Small limits: the workload runs through throttling and background write-back too.
        var cache = new WriteBackCache(store, new CacheOptions { InstanceDirtyLimit = 1 << 20, GlobalDirtyLimit = 2 << 20, MaxDirtyAge = TimeSpan.FromMilliseconds(20) });
        for (int i = 0; i < 3; i++)
        {
            var instance = await store.CreateInstanceAsync($"heavy{i}", 1 << 20, testBase.Identity);
            exports.Add(await InstanceExport.OpenAsync(cache, instance));
        }

        for (int round = 0; round < 3; round++)
        {
            foreach (var export in exports)
            {
                // Every byte over the base, in unaligned pieces; then zero, trim, and write again.
                for (long offset = round * 100; offset < export.Size; offset += 3 * Block)
                {
                    byte[] data = new byte[(int)Math.Min(3 * Block, export.Size - offset)];
                    rng.NextBytes(data);
                    await export.WriteAsync(offset, data, rng.Next(8) == 0 ? WriteFlags.Fua : WriteFlags.None);
                }

                await export.ZeroAsync(1000, 100 * Block, ZeroFlags.None);
                await export.ZeroAsync(5000, 30 * Block, ZeroFlags.NoHole);
                await export.TrimAsync(0, export.Size, WriteFlags.None);
                await export.WriteAsync(baseSize - 10, new byte[20], WriteFlags.Fua);
                await export.FlushAsync();
            }
        }

        foreach (var export in exports)
        {
            await export.DisposeAsync();
        }

        await cache.DisposeAsync();
        await store.DisposeAsync();
        var after = new FileInfo(testBase.Path);
        Assert.Multiple(() =>
        {
            Assert.That(after.Length, Is.EqualTo(size), "size");
            Assert.That(after.LastWriteTimeUtc, Is.EqualTo(mtime), "mtime");
            Assert.That(testBase.HashFile(), Is.EqualTo(hash), "content");
        });
    }

    private static void Change(string path, string change, long where)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        switch (change)
        {
            case "append":
                file.Seek(0, SeekOrigin.End);
                file.WriteByte(0);
                break;
            case "truncate":
                file.SetLength(file.Length - where);
                break;
            default:
                file.Seek(where, SeekOrigin.Begin);
                int old = file.ReadByte();
                file.Seek(where, SeekOrigin.Begin);
                file.WriteByte((byte)(old ^ 0x01));
                break;
        }
    }

    /// <summary>This process's descriptors open on <paramref name="path"/>, with their open flags (from /proc/self/fdinfo).</summary>
    private static List<(string Fd, int Flags)> OpenDescriptorsOf(string path)
    {
        var found = new List<(string, int)>();
        foreach (var link in Directory.GetFiles("/proc/self/fd"))
        {
            string? target;
            try
            {
                target = new FileInfo(link).LinkTarget;
            }
            catch (IOException)
            {
                continue; // closed meanwhile
            }

            if (target != path)
            {
                continue;
            }

            string fd = Path.GetFileName(link);
            string? line = File.ReadLines($"/proc/self/fdinfo/{fd}").FirstOrDefault(l => l.StartsWith("flags:", StringComparison.Ordinal));
            found.Add((fd, Convert.ToInt32(line!["flags:".Length..].Trim(), 8)));
        }

        return found;
    }
}
