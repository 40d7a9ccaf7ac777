using System.Diagnostics;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io;

/// <summary>
/// The store on a file or a block device, through O_DIRECT: no page cache between the store
/// and the media, so a write's cost is its own bytes and a durable write is forced unit access.
/// </summary>
/// <remarks>
/// <para><b>Opening.</b> open(2) through P/Invoke with O_DIRECT (.NET drops the flag), then
/// flock(2): exclusive for read-write, shared for read-only, so two servers can never open one
/// store and a checker cannot read a store a server is changing. The lock lives as long as the
/// open file, which can outlive its process by a moment: after a kill -9 the kernel lets go of
/// the files of the dead process's io_uring in a worker of its own, after the process is reaped.
/// So an opener may wait a bounded time for a held lock (polled: a blocking flock cannot time
/// out) before it refuses. A file system without direct I/O (tmpfs before Linux 6.6,
/// procfs, some FUSE mounts) answers EINVAL, reported as such.</para>
/// <para><b>Size.</b> lseek(SEEK_END): the length of a regular file and the capacity of a block
/// device alike (the same answer as fstat + BLKGETSIZE64, without mirroring struct stat per
/// architecture). A tail shorter than one block is not used.</para>
/// <para><b>I/O.</b> Through one of two backends (<see cref="IoBackend"/>, chosen at open):
/// io_uring (<see cref="UringFileIo"/>) or pread/pwrite on threads (<see cref="ThreadedFileIo"/>).
/// Both loop over short transfers, write durably with RWF_DSYNC, take gather writes as iovecs
/// (<see cref="IoVecs"/>) and flush with fdatasync; the
/// checks of every call and everything about opening are here, once. Every failure is an
/// <see cref="IOException"/> naming the call, path and offset, HResult = errno.</para>
/// <para><b>Durability.</b> A durable write is on stable media when its task completes. A
/// non-durable write is in the device's volatile cache until <see cref="FlushAsync"/>
/// (fdatasync) completes. A new store file is fully written with zeros before first use:
/// into unwritten or sparse extents, every RWF_DSYNC write would also commit file system
/// metadata (a journal commit), which is exactly the cost the store is built to avoid.</para>
/// <para><b>Locking.</b> None here: calls are independent. Each backend keeps the descriptor
/// open until its last call has returned, so disposing during I/O closes it then.</para>
/// </remarks>
public sealed class FileDevice : IBlockDevice
{
    private const int ZeroChunkSize = 1 << 20;
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly SafeFileHandle _handle;
    private readonly IFileIo _io;

    private FileDevice(SafeFileHandle handle, string path, long size, bool isReadOnly, IoBackend backend)
    {
        _handle = handle;
        Path = path;
        Size = size;
        IsReadOnly = isReadOnly;
        Backend = IoBackends.Resolve(backend).Chosen;
        _io = Backend == IoBackend.Uring ? UringFileIo.Create(handle, path) : new ThreadedFileIo(handle, path);
    }

    /// <summary>The path this device was opened with.</summary>
    public string Path { get; }

    /// <inheritdoc/>
    public long Size { get; }

    /// <summary>True when opened read-only (shared lock); writes and flushes are refused.</summary>
    public bool IsReadOnly { get; }

    /// <summary>The backend this device reads and writes through (never <see cref="IoBackend.Auto"/>).</summary>
    public IoBackend Backend { get; }

    /// <summary>
    /// Opens an existing file or block device. Throws <see cref="IOException"/> if it does not
    /// exist, is in use by another opener (still after <paramref name="lockWait"/>, see
    /// "Opening"; <paramref name="waiting"/> is told once when the wait begins), or its file
    /// system has no direct I/O; or if <paramref name="backend"/> is <see cref="IoBackend.Uring"/>
    /// and the kernel refuses a ring.
    /// </summary>
    public static FileDevice Open(string path, bool readOnly = false, IoBackend backend = IoBackend.Auto, TimeSpan lockWait = default, Action? waiting = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var handle = OpenDescriptor(path, (readOnly ? LibC.O_RDONLY : LibC.O_RDWR) | LibC.O_DIRECT | LibC.O_CLOEXEC, mode: 0);
        try
        {
            Lock(handle, path, readOnly, lockWait, waiting);
            return new FileDevice(handle, path, MeasureSize(handle, path), readOnly, backend);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Creates a new store file of <paramref name="size"/> bytes (a positive multiple of the block
    /// size), writes zeros over all of it, makes it and its directory entry durable, and returns
    /// it open and locked. Refuses a path that exists; removes the file again if any step fails.
    /// </summary>
    public static async Task<FileDevice> CreateAsync(string path, long size, IoBackend backend = IoBackend.Auto, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (size <= 0 || size % IBlockDevice.BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"store size must be a positive multiple of {IBlockDevice.BlockSize}");
        }

        const uint ownerReadWrite = 0x180; // 0600: the store holds every instance's data.
        var handle = OpenDescriptor(path, LibC.O_RDWR | LibC.O_CREAT | LibC.O_EXCL | LibC.O_DIRECT | LibC.O_CLOEXEC, ownerReadWrite);
        FileDevice? device = null;
        try
        {
            Lock(handle, path, readOnly: false, lockWait: TimeSpan.Zero, waiting: null);
            if (LibC.ftruncate(handle, size) != 0)
            {
                throw Errno.Exception("ftruncate", path, Marshal.GetLastPInvokeError());
            }

            device = new FileDevice(handle, path, size, isReadOnly: false, backend);
            await device.WriteZerosAsync(cancellationToken);
            await device.FlushAsync();
            SyncParentDirectory(path);
            return device;
        }
        catch
        {
            if (device is not null)
            {
                await device.DisposeAsync();
            }

            handle.Dispose();
            File.Delete(path);
            throw;
        }
    }

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        BlockAlignment.Validate(Size, offset, buffer);
        return _io.ReadAsync(offset, buffer);
    }

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        BlockAlignment.Validate(Size, offset, data);
        ThrowIfReadOnly();
        return _io.WriteAsync(offset, data, durable);
    }

    /// <inheritdoc/>
    /// <remarks>From the segments themselves, with no staging copy: each backend passes them as iovecs (<see cref="IoVecs"/>).</remarks>
    public ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable)
    {
        BlockAlignment.ValidateGather(Size, offset, segments.Span);
        ThrowIfReadOnly();
        return _io.WriteGatherAsync(offset, segments, durable);
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync()
    {
        ThrowIfReadOnly();
        return _io.FlushAsync();
    }

    /// <inheritdoc/>
    /// <remarks>Closing the descriptor releases the lock (once the backend has let go of it).</remarks>
    public async ValueTask DisposeAsync()
    {
        await _io.DisposeAsync();
        _handle.Dispose();
    }

    /// <summary>A read that found the end of the file inside the device: the file shrank underneath us (Size was checked at open).</summary>
    internal static IOException UnexpectedEnd(string call, string path, long offset) =>
        new($"{call} on '{path}' at offset {offset} failed: unexpected end of file (was the store truncated?)", Errno.EIO);

    /// <summary>A write that wrote nothing and reported no error.</summary>
    internal static IOException NoProgress(string call, string path, long offset) =>
        new($"{call} on '{path}' at offset {offset} made no progress", Errno.EIO);

    private async Task WriteZerosAsync(CancellationToken cancellationToken)
    {
        using var zeros = new AlignedBuffer(ZeroChunkSize);
        for (long offset = 0; offset < Size; offset += ZeroChunkSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var length = (int)Math.Min(ZeroChunkSize, Size - offset);
            await _io.WriteAsync(offset, zeros.Memory[..length], durable: false);
        }
    }

    private void ThrowIfReadOnly()
    {
        if (IsReadOnly)
        {
            throw new InvalidOperationException($"'{Path}' was opened read-only");
        }
    }

    private static SafeFileHandle OpenDescriptor(string path, int flags, uint mode)
    {
        while (true)
        {
            var fd = LibC.open(path, flags, mode);
            if (fd >= 0)
            {
                return new SafeFileHandle(fd, ownsHandle: true);
            }

            var errno = Marshal.GetLastPInvokeError();
            switch (errno)
            {
                case Errno.EINTR:
                    continue;
                case Errno.EINVAL when (flags & LibC.O_DIRECT) != 0:
                    throw new IOException(
                        $"cannot open '{path}': its file system does not support O_DIRECT (direct I/O); " +
                        "put the store on a disk file system (ext4, xfs, btrfs) or a block device", errno);
                case Errno.EEXIST:
                    throw new IOException($"cannot create '{path}': it already exists; a store is never created over an existing file", errno);
                default:
                    throw Errno.Exception("open", path, errno);
            }
        }
    }

    private static void Lock(SafeFileHandle handle, string path, bool readOnly, TimeSpan lockWait, Action? waiting)
    {
        var operation = (readOnly ? LibC.LOCK_SH : LibC.LOCK_EX) | LibC.LOCK_NB;
        long started = 0;
        while (LibC.flock(handle, operation) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Errno.EAGAIN && started == 0 && lockWait > TimeSpan.Zero)
            {
                started = Stopwatch.GetTimestamp();
                waiting?.Invoke();
            }

            if (errno == Errno.EAGAIN && started != 0 && Stopwatch.GetElapsedTime(started) < lockWait)
            {
                Thread.Sleep(LockPollInterval);
            }
            else if (errno == Errno.EAGAIN)
            {
                var waited = started == 0 ? "" : $" (waited {lockWait.TotalSeconds:0.#} s for it to be let go)";
                throw new IOException(
                    $"store '{path}' is in use: another process (or another device in this one) holds its lock{waited}; " +
                    "stop the other server before opening it", errno);
            }
            else if (errno != Errno.EINTR)
            {
                throw Errno.Exception("flock", path, errno);
            }
        }
    }

    private static long MeasureSize(SafeFileHandle handle, string path)
    {
        var end = LibC.lseek(handle, 0, LibC.SEEK_END);
        if (end < 0)
        {
            throw Errno.Exception("lseek(SEEK_END)", path, Marshal.GetLastPInvokeError());
        }

        var size = end - (end % IBlockDevice.BlockSize);
        if (size == 0)
        {
            throw new IOException($"'{path}' is {end} bytes long: not even one {IBlockDevice.BlockSize}-byte block", Errno.EINVAL);
        }

        return size;
    }

    /// <summary>fsync the directory, so the new file's name survives a power loss along with its blocks.</summary>
    private static void SyncParentDirectory(string path)
    {
        var directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? "/";
        using var handle = OpenDescriptor(directory, LibC.O_RDONLY | LibC.O_CLOEXEC, mode: 0);
        while (LibC.fsync(handle) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                throw Errno.Exception("fsync", directory, errno);
            }
        }
    }
}
