using System.Diagnostics;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using BlockOverlay.Io;

namespace BlockOverlay.Io.Tests;

/// <summary>What only a real file can show: the lock, creation, reopening, O_DIRECT itself; over each backend.</summary>
[TestFixture(IoBackend.Threads)]
[TestFixture(IoBackend.Uring)]
public sealed class FileDeviceTests(IoBackend backend)
{
    private const int Block = TestData.Block;
    private const long StoreSize = 1 << 20;

    private ScratchDirectory _scratch = null!;

    [SetUp]
    public void CreateScratch() => _scratch = new ScratchDirectory();

    [TearDown]
    public void RemoveScratch() => _scratch.Dispose();

    [Test]
    [Category("Slow")] // left out of make check
    public async Task Create_writes_every_block_so_the_file_has_no_holes()
    {
        const long size = (3 << 20) + Block;
        var path = _scratch.File("store");

        await (await _scratch.CreateStoreAsync("store", size, backend)).DisposeAsync();

        using var handle = File.OpenHandle(path);
        Assert.Multiple(() =>
        {
            Assert.That(new FileInfo(path).Length, Is.EqualTo(size));
            Assert.That(LibC.lseek(handle, 0, LibC.SEEK_HOLE), Is.EqualTo(size), "first hole is at the end: no sparse range");
            Assert.That(File.ReadAllBytes(path), Is.All.EqualTo(0));
        });
    }

    [Test]
    public async Task Create_refuses_an_existing_file_and_leaves_it_alone()
    {
        var path = _scratch.File("store");
        await File.WriteAllTextAsync(path, "somebody's data");

        var error = Assert.CatchAsync<IOException>(async () => await FileDevice.CreateAsync(path, StoreSize, backend));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("already exists").And.Contain(path));
            Assert.That(error.HResult, Is.EqualTo(17), "EEXIST");
            Assert.That(File.ReadAllText(path), Is.EqualTo("somebody's data"));
        });
    }

    [TestCase(0L)]
    [TestCase(StoreSize + 512)]
    public void Create_refuses_a_size_that_is_not_whole_blocks_and_creates_nothing(long size)
    {
        var path = _scratch.File("store");

        Assert.CatchAsync<ArgumentException>(async () => await FileDevice.CreateAsync(path, size, backend));
        Assert.That(File.Exists(path), Is.False);
    }

    [Test]
    public async Task A_second_open_of_a_store_in_use_fails_naming_it()
    {
        var path = _scratch.File("store");
        await using var first = await _scratch.CreateStoreAsync("store", StoreSize, backend);

        var error = Assert.Throws<IOException>(() => FileDevice.Open(path, backend: backend));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("in use").And.Contain(path));
            Assert.That(error.HResult, Is.EqualTo(11), "EWOULDBLOCK");
        });
    }

    [Test]
    public async Task An_opener_that_may_wait_gets_the_store_when_its_holder_lets_go()
    {
        // 1. A holder (as a killed server whose files the kernel has not closed yet).
        var path = _scratch.File("store");
        var holder = await _scratch.CreateStoreAsync("store", StoreSize, backend);
        var waiting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        // 2. A second opener starts waiting; only then does the holder let go.
        var opening = Task.Run(() => FileDevice.Open(path, backend: backend, lockWait: TimeSpan.FromSeconds(60), waiting: waiting.SetResult));
        await waiting.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(opening.IsCompleted, Is.False, "it waits while the lock is held");
        await holder.DisposeAsync();

        // 3. It gets the store, locked for itself.
        await using var opened = await opening.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.That(() => FileDevice.Open(path, backend: backend), Throws.InstanceOf<IOException>().With.Message.Contains("in use"));
    }

    [Test]
    public async Task An_opener_refuses_a_lock_held_past_its_wait_saying_how_long_it_waited()
    {
        var path = _scratch.File("store");
        await using var holder = await _scratch.CreateStoreAsync("store", StoreSize, backend);
        int told = 0;
        var clock = Stopwatch.StartNew();

        var error = Assert.Throws<IOException>(() =>
            FileDevice.Open(path, backend: backend, lockWait: TimeSpan.FromMilliseconds(300), waiting: () => told++));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("in use").And.Contain(path).And.Contain("waited 0.3 s"));
            Assert.That(error.HResult, Is.EqualTo(11), "EWOULDBLOCK");
            Assert.That(told, Is.EqualTo(1), "the wait is announced once");
            Assert.That(clock.Elapsed, Is.GreaterThanOrEqualTo(TimeSpan.FromMilliseconds(300)));
        });
    }

    [Test]
    public async Task Readers_share_a_store_but_exclude_a_writer()
    {
        var path = _scratch.File("store");
        await (await _scratch.CreateStoreAsync("store", StoreSize, backend)).DisposeAsync();

        await using (var reader = FileDevice.Open(path, readOnly: true, backend))
        {
            await using var otherReader = FileDevice.Open(path, readOnly: true, backend);
            Assert.That(() => FileDevice.Open(path, backend: backend), Throws.InstanceOf<IOException>().With.Message.Contains("in use"));
        }

        await using var writer = FileDevice.Open(path, backend: backend);
        Assert.That(() => FileDevice.Open(path, readOnly: true, backend), Throws.InstanceOf<IOException>().With.Message.Contains("in use"));
    }

    [Test]
    public async Task A_read_only_device_refuses_writes_and_flushes()
    {
        var path = _scratch.File("store");
        await (await _scratch.CreateStoreAsync("store", StoreSize, backend)).DisposeAsync();
        await using var reader = FileDevice.Open(path, readOnly: true, backend);
        using var buffer = new AlignedBuffer(Block);

        Assert.Multiple(() =>
        {
            Assert.That(reader.IsReadOnly, Is.True);
            Assert.CatchAsync<InvalidOperationException>(async () => await reader.WriteAsync(0, buffer.Memory, durable: true));
            Assert.CatchAsync<InvalidOperationException>(async () => await reader.WriteGatherAsync(0, new[] { (ReadOnlyMemory<byte>)buffer.Memory }, durable: true));
            Assert.CatchAsync<InvalidOperationException>(async () => await reader.FlushAsync());
        });
    }

    [Test]
    public async Task Writes_survive_closing_and_reopening()
    {
        var path = _scratch.File("store");
        await using (var device = await _scratch.CreateStoreAsync("store", StoreSize, backend))
        {
            await TestData.WriteAsync(device, 0, tag: 1, 2 * Block, durable: true);
            await TestData.WriteAsync(device, StoreSize - Block, tag: 2, Block, durable: false);
            await device.FlushAsync();
        }

        await using var reopened = FileDevice.Open(path, backend: backend);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(reopened.Size, Is.EqualTo(StoreSize));
            Assert.That(await TestData.ReadAsync(reopened, 0, 2 * Block), Is.EqualTo(TestData.Pattern(1, 2 * Block)));
            Assert.That(await TestData.ReadAsync(reopened, StoreSize - Block, Block), Is.EqualTo(TestData.Pattern(2, Block)));
        });
    }

    [Test]
    public async Task The_store_is_opened_with_O_DIRECT_and_O_CLOEXEC()
    {
        var path = _scratch.File("store");
        await using var device = await _scratch.CreateStoreAsync("store", StoreSize, backend);

        var flags = OpenFlagsOf(path);

        Assert.Multiple(() =>
        {
            Assert.That(flags & LibC.O_DIRECT, Is.EqualTo(LibC.O_DIRECT), "O_DIRECT");
            Assert.That(flags & LibC.O_CLOEXEC, Is.EqualTo(LibC.O_CLOEXEC), "O_CLOEXEC");
        });
    }

    [Test]
    public void Opening_a_missing_store_names_the_path_and_errno()
    {
        var path = _scratch.File("missing");

        var error = Assert.Throws<IOException>(() => FileDevice.Open(path, backend: backend));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain(path));
            Assert.That(error.HResult, Is.EqualTo(2), "ENOENT");
        });
    }

    [Test]
    public void A_file_system_without_direct_io_is_named_as_the_cause()
    {
        // procfs refuses O_DIRECT with EINVAL, as tmpfs did before Linux 6.6.
        const string path = "/proc/version";
        if (!File.Exists(path))
        {
            Assert.Ignore("no procfs here to stand in for a file system without O_DIRECT");
        }

        var error = Assert.Throws<IOException>(() => FileDevice.Open(path, readOnly: true, backend));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("does not support O_DIRECT").And.Contain(path));
            Assert.That(error.HResult, Is.EqualTo(22), "EINVAL");
        });
    }

    [Test]
    public async Task An_existing_file_is_used_in_whole_blocks_only()
    {
        var path = _scratch.File("odd");
        await File.WriteAllBytesAsync(path, new byte[(2 * Block) + 100]);

        await using var device = FileDevice.Open(path, backend: backend);

        Assert.That(device.Size, Is.EqualTo(2 * Block));
    }

    [Test]
    public async Task A_file_shorter_than_one_block_is_refused()
    {
        var path = _scratch.File("tiny");
        await File.WriteAllBytesAsync(path, new byte[100]);

        Assert.That(() => FileDevice.Open(path, backend: backend), Throws.InstanceOf<IOException>().With.Message.Contains("not even one"));
    }

    [Test]
    public async Task A_store_truncated_underneath_fails_reads_with_EIO_instead_of_returning_short()
    {
        var path = _scratch.File("store");
        await using var device = await _scratch.CreateStoreAsync("store", StoreSize, backend);
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            file.SetLength(Block);
        }

        var error = Assert.CatchAsync<IOException>(async () => await TestData.ReadAsync(device, 0, 2 * Block));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("end of file").And.Contain(path));
            Assert.That(error.HResult, Is.EqualTo(5), "EIO");
        });
    }

    [Test]
    public async Task Many_concurrent_reads_and_writes_each_see_their_own_bytes()
    {
        // More calls at once than io_uring's bound on requests in the kernel (1024), mixed
        // with flushes: each block written, then read back by the same call chain.
        const int calls = 1500;
        await using var device = await _scratch.CreateStoreAsync("store", (long)calls * Block, backend);

        var wrong = await Task.WhenAll(Enumerable.Range(0, calls).Select(async i =>
        {
            await Task.Yield();
            await TestData.WriteAsync(device, (long)i * Block, tag: i, Block, durable: i % 3 == 0);
            if (i % 100 == 0)
            {
                await device.FlushAsync();
            }

            return (await TestData.ReadAsync(device, (long)i * Block, Block)).SequenceEqual(TestData.Pattern(i, Block)) ? -1 : i;
        }));

        Assert.That(wrong.Where(i => i >= 0), Is.Empty);
    }

    [Test]
    public async Task A_gather_of_more_segments_than_IOV_MAX_lands_exactly([Values] bool durable)
    {
        // 1,500 one-block segments of one buffer, back to front: none can merge, so the write
        // goes as 1,024 iovecs and then 476, at consecutive offsets.
        const int segmentCount = 1500;
        await using var device = await _scratch.CreateStoreAsync("store", (segmentCount + 2L) * Block, backend);
        using var buffer = TestData.PatternBuffer(31, segmentCount * Block);
        ReadOnlyMemory<byte>[] segments = [.. Enumerable.Range(0, segmentCount).Select(i => buffer.Memory.Slice((segmentCount - 1 - i) * Block, Block))];

        await device.WriteGatherAsync(Block, segments, durable);

        await AssertLandedAsync(device, Block, segments);
    }

    [Test]
    public async Task A_gather_of_slices_in_order_lands_exactly([Values] bool durable)
    {
        // Two runs of one buffer's blocks in order, each merged into one iovec, and a block of
        // another buffer between them, where merging must stop and start again.
        const int blocks = 1500;
        await using var device = await _scratch.CreateStoreAsync("store", (blocks + 3L) * Block, backend);
        using var run = TestData.PatternBuffer(32, blocks * Block);
        using var between = TestData.PatternBuffer(33, Block);
        ReadOnlyMemory<byte>[] segments =
        [
            .. Enumerable.Range(0, 1200).Select(i => run.Memory.Slice(i * Block, Block)),
            between.Memory,
            .. Enumerable.Range(1200, blocks - 1200).Select(i => run.Memory.Slice(i * Block, Block)),
        ];

        await device.WriteGatherAsync(Block, segments, durable);

        await AssertLandedAsync(device, Block, segments);
    }

    [Test]
    public async Task A_gather_of_managed_array_slices_lands_exactly()
    {
        // Array memory is pinned through a GCHandle per segment (an AlignedBuffer's needs none);
        // the array is allocated pinned only so that an aligned start can be found in it.
        await using var device = await _scratch.CreateStoreAsync("store", StoreSize, backend);
        var array = GC.AllocateArray<byte>(5 * Block, pinned: true);
        var start = (int)((Block - (Marshal.UnsafeAddrOfPinnedArrayElement(array, 0) % Block)) % Block);
        TestData.Pattern(34, 4 * Block).CopyTo(array, start);
        ReadOnlyMemory<byte>[] segments = [.. new[] { 3, 1, 2, 0 }.Select(i => new ReadOnlyMemory<byte>(array, start + (i * Block), Block))];

        await device.WriteGatherAsync(2 * Block, segments, durable: true);

        await AssertLandedAsync(device, 2 * Block, segments);
    }

    [Test]
    public async Task Completions_continue_on_the_thread_pool()
    {
        await using var device = await _scratch.CreateStoreAsync("store", StoreSize, backend);
        using var buffer = new AlignedBuffer(Block);

        await device.ReadAsync(0, buffer.Memory);

        Assert.That(Thread.CurrentThread.IsThreadPoolThread, Is.True);
    }

    /// <summary>The segments' bytes one after another from <paramref name="offset"/>, and zeros in the blocks on either side.</summary>
    private static async Task AssertLandedAsync(IBlockDevice device, long offset, ReadOnlyMemory<byte>[] segments)
    {
        byte[] expected = [.. segments.SelectMany(segment => segment.ToArray())];
        var landed = await TestData.ReadAsync(device, offset, expected.Length);

        await Assert.MultipleAsync(async () =>
        {
            Assert.That(landed.SequenceEqual(expected), Is.True, "the segments, in order");
            Assert.That(await TestData.ReadAsync(device, offset - Block, Block), Is.All.EqualTo(0), "the block before untouched");
            Assert.That(await TestData.ReadAsync(device, offset + expected.Length, Block), Is.All.EqualTo(0), "the block after untouched");
        });
    }

    /// <summary>The open-file flags of this process's descriptor for <paramref name="path"/>, from /proc/self/fdinfo.</summary>
    private static int OpenFlagsOf(string path)
    {
        var descriptor = new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos()
            .Single(fd => fd.ResolveLinkTarget(returnFinalTarget: false)?.FullName == path).Name;
        var flagsLine = File.ReadLines($"/proc/self/fdinfo/{descriptor}").Single(line => line.StartsWith("flags:", StringComparison.Ordinal));
        return Convert.ToInt32(flagsLine["flags:".Length..].Trim(), 8);
    }
}
