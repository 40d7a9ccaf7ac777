using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Engine.Exports;

/// <summary>A regular file or a block device served as a disk, byte for byte.</summary>
/// <remarks>
/// Design and implementation.
/// <para>
/// <b>States.</b> None of our own: the file is the disk. Holes (sparse regions) read as
/// zeros and are what trim and zeroing create. One descriptor serves every connection.
/// </para>
/// <para>
/// <b>Opening.</b> Writable exports take an exclusive advisory lock (flock, through
/// <see cref="FileShare.None"/>), read-only ones a shared lock, so two servers cannot write
/// one image and nothing reads an image another server is writing. The size is fixed at
/// open (lseek to the end, which also works for block devices).
/// </para>
/// <para>
/// <b>Locking.</b> None in the export: reads and writes are positional (pread/pwrite
/// through <see cref="RandomAccess"/>), so any number run at once; the kernel orders
/// concurrent writes to the same bytes. A read first copies what the page cache holds on
/// the caller's thread (preadv2 with RWF_NOWAIT, which never waits for the device); only
/// what is not cached goes to a pool thread, so a cached read costs no thread hop. Calls that may wait on the device (fdatasync,
/// fallocate, posix_fadvise, SEEK_DATA) run on the thread pool so the caller never blocks.
/// </para>
/// <para>
/// <b>Durability.</b> Writes land in the page cache. Flush is fdatasync on the shared
/// descriptor, which covers every connection's completed writes (hence MultiConn). FUA is
/// the write followed by fdatasync. A read-only export's flush returns at once: nothing was
/// written through it (an fdatasync there waited seconds on a busy disk for nothing).
/// </para>
/// <para>
/// <b>Trim and zero.</b> Trim punches a hole (fallocate PUNCH_HOLE|KEEP_SIZE); where the
/// file system cannot, trim does nothing, which the protocol allows. Zero punches a hole,
/// or with NoHole uses ZERO_RANGE so the blocks stay allocated (ext4 then reports them as
/// holes to SEEK_DATA, because they are unwritten extents). When the file system supports
/// neither, zeroing writes zeros in 1 MiB chunks, or with FastZero fails with
/// <see cref="ExportError.NotSupported"/> having changed nothing. A mode found unsupported
/// is remembered and not tried again. FastZero is advertised when a probe at open finds
/// hole punching supported.
/// </para>
/// <para>
/// <b>Block status.</b> lseek SEEK_DATA/SEEK_HOLE: holes are Hole|Zero, the rest Data; a file
/// system without them reports everything as Data, which is always true.
/// </para>
/// </remarks>
public sealed class FileExport : IExport
{
    private const int ZeroChunk = 1 << 20;
    private static readonly byte[] s_zeros = new byte[ZeroChunk];

    private readonly SafeFileHandle _handle;
    private readonly string _path;
    private readonly bool _readOnly;
    private volatile bool _punchUnsupported;
    private volatile bool _zeroRangeUnsupported;
    private volatile bool _seekDataUnsupported;
    private volatile bool _noWaitUnsupported;

    private FileExport(SafeFileHandle handle, string path, long size, bool readOnly, bool canPunch)
    {
        _handle = handle;
        _path = path;
        _readOnly = readOnly;
        Size = size;
        Description = path;

        Capabilities = ExportCapabilities.Flush | ExportCapabilities.Cache | ExportCapabilities.MultiConn;
        if (readOnly)
        {
            Capabilities |= ExportCapabilities.ReadOnly;
        }
        else
        {
            Capabilities |= ExportCapabilities.Trim;
            if (canPunch)
            {
                Capabilities |= ExportCapabilities.FastZero;
            }
        }
    }

    public long Size { get; }

    public ExportCapabilities Capabilities { get; }

    public string Description { get; }

    /// <summary>
    /// Opens an existing file or block device. Throws <see cref="FileNotFoundException"/>,
    /// <see cref="UnauthorizedAccessException"/> or <see cref="IOException"/> (also when
    /// another process holds the file open through an export, see the locking note).
    /// </summary>
    public static FileExport Open(string path, bool readOnly = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            throw new PlatformNotSupportedException("File exports need 64-bit Linux.");
        }

        SafeFileHandle handle = File.OpenHandle(
            path,
            FileMode.Open,
            readOnly ? FileAccess.Read : FileAccess.ReadWrite,
            readOnly ? FileShare.Read : FileShare.None,
            FileOptions.Asynchronous);
        try
        {
            long size = LibcFile.Seek(handle, 0, LibC.SEEK_END, out int errno);
            if (size < 0)
            {
                throw LibcFile.Failure(errno, "Finding the size (lseek SEEK_END)", path);
            }

            bool canPunch = !readOnly && ProbePunchHole(handle, size);
            return new FileExport(handle, path, size, readOnly, canPunch);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Which file is open, and which version of it (<see cref="FileStamp"/>).</summary>
    public FileStamp Stamp() => FileStamp.Of(_handle);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        int cached = ReadCached(offset, buffer.Span);
        return cached == buffer.Length ? ValueTask.CompletedTask : ReadFromDeviceAsync(offset + cached, buffer[cached..]);
    }

    /// <summary>
    /// Copies what the page cache holds of the range from its start, on the caller's thread:
    /// preadv2 with RWF_NOWAIT answers EAGAIN rather than wait for the device, so a cached read
    /// is one system call and no hand-off to a pool thread. Returns the bytes copied; it stops
    /// at the first byte not cached, at the end of the file, or at any error, and the read from
    /// the device does the rest (and reports the error, if it is one).
    /// </summary>
    private unsafe int ReadCached(long offset, Span<byte> buffer)
    {
        if (_noWaitUnsupported)
        {
            return 0;
        }

        int done = 0;
        fixed (byte* start = buffer)
        {
            while (done < buffer.Length)
            {
                var part = new LibC.IoVec { Base = start + done, Length = (nuint)(buffer.Length - done) };
                nint read = LibC.preadv2(_handle, &part, 1, offset + done, LibC.RWF_NOWAIT);
                if (read <= 0)
                {
                    // A file system or kernel without RWF_NOWAIT for reads says so once; EAGAIN is "not cached".
                    if (read < 0 && Marshal.GetLastPInvokeError() == Errno.EOPNOTSUPP)
                    {
                        _noWaitUnsupported = true;
                    }

                    break;
                }

                done += (int)read;
            }
        }

        return done;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadFromDeviceAsync(long offset, Memory<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int read = await RandomAccess.ReadAsync(_handle, buffer, offset);
            if (read == 0)
            {
                throw new IOException($"Reading '{_path}' at {offset}: unexpected end of file (was it truncated while exported?).");
            }

            buffer = buffer[read..];
            offset += read;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags)
    {
        ThrowIfReadOnly();
        await WriteCoreAsync(offset, data);
        if ((flags & WriteFlags.Fua) != 0)
        {
            await FlushAsync();
        }
    }

    public async ValueTask FlushAsync()
    {
        if (_readOnly)
        {
            return; // nothing was written through it, so nothing waits to be made durable
        }

        int errno = await Task.Run(() => LibcFile.DataSync(_handle));
        if (errno != 0)
        {
            throw LibcFile.Failure(errno, "fdatasync", _path);
        }
    }

    public async ValueTask TrimAsync(long offset, long length, WriteFlags flags)
    {
        ThrowIfReadOnly();
        if (!_punchUnsupported)
        {
            int errno = await AllocateAsync(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
            if (IsUnsupported(errno))
            {
                _punchUnsupported = true;
            }
            else if (errno != 0)
            {
                throw LibcFile.Failure(errno, $"Trim (punching a hole at {offset}, {length} bytes)", _path);
            }
        }

        if ((flags & WriteFlags.Fua) != 0)
        {
            await FlushAsync();
        }
    }

    public async ValueTask ZeroAsync(long offset, long length, ZeroFlags flags)
    {
        ThrowIfReadOnly();
        if (!await TryZeroFastAsync(offset, length, keepAllocated: (flags & ZeroFlags.NoHole) != 0))
        {
            if ((flags & ZeroFlags.FastZero) != 0)
            {
                throw new ExportException(
                    ExportError.NotSupported,
                    $"Zeroing '{_path}' would mean writing zeros: the file system supports neither hole punching nor zero ranges here.");
            }

            for (long done = 0; done < length; done += ZeroChunk)
            {
                int count = (int)Math.Min(ZeroChunk, length - done);
                await WriteCoreAsync(offset + done, s_zeros.AsMemory(0, count));
            }
        }

        if ((flags & ZeroFlags.Fua) != 0)
        {
            await FlushAsync();
        }
    }

    public async ValueTask CacheAsync(long offset, long length)
    {
        int error = await Task.Run(() => LibcFile.Advise(_handle, offset, length, LibC.POSIX_FADV_WILLNEED));
        if (error != 0 && !IsUnsupported(error) && error != Errno.ESPIPE)
        {
            throw LibcFile.Failure(error, "posix_fadvise WILLNEED", _path);
        }
    }

    /// <summary>Nothing held back: writes went to the file (the page cache) already.</summary>
    public ValueTask ClientDetachedAsync() => ValueTask.CompletedTask;

    public async ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxExtents);
        ArgumentNullException.ThrowIfNull(extents);
        if (_seekDataUnsupported)
        {
            extents.Add(new Extent(length, ExtentState.Data));
            return;
        }

        await Task.Run(() => MapExtents(offset, length, maxExtents, extents));
    }

    public ValueTask DisposeAsync()
    {
        _handle.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Whether this file system can punch holes: punching past the end with KEEP_SIZE changes
    /// nothing where it is supported and fails with EOPNOTSUPP where it is not. Any other
    /// answer (a block device refuses ranges past its end) leaves the question to each call.
    /// </summary>
    private static bool ProbePunchHole(SafeFileHandle handle, long size)
    {
        const long Probe = 4096;
        long offset = (size + Probe - 1) / Probe * Probe;
        int errno = LibcFile.Allocate(handle, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, Probe);
        return !IsUnsupported(errno);
    }

    private static bool IsUnsupported(int errno) => errno is Errno.EOPNOTSUPP or Errno.ENOSYS or Errno.ENODEV;

    /// <summary>Zeroes with fallocate if the file system can; false (nothing changed) if it cannot.</summary>
    private async ValueTask<bool> TryZeroFastAsync(long offset, long length, bool keepAllocated)
    {
        if (!keepAllocated && !_punchUnsupported)
        {
            int errno = await AllocateAsync(LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
            if (errno == 0)
            {
                return true;
            }

            if (!IsUnsupported(errno))
            {
                throw LibcFile.Failure(errno, $"Zeroing (punching a hole at {offset}, {length} bytes)", _path);
            }

            _punchUnsupported = true;
        }

        if (!_zeroRangeUnsupported)
        {
            int errno = await AllocateAsync(LibC.FALLOC_FL_ZERO_RANGE | LibC.FALLOC_FL_KEEP_SIZE, offset, length);
            if (errno == 0)
            {
                return true;
            }

            if (!IsUnsupported(errno))
            {
                throw LibcFile.Failure(errno, $"Zeroing (fallocate ZERO_RANGE at {offset}, {length} bytes)", _path);
            }

            _zeroRangeUnsupported = true;
        }

        return false;
    }

    private Task<int> AllocateAsync(int mode, long offset, long length) =>
        Task.Run(() => LibcFile.Allocate(_handle, mode, offset, length));

    private async ValueTask WriteCoreAsync(long offset, ReadOnlyMemory<byte> data)
    {
        try
        {
            await RandomAccess.WriteAsync(_handle, data, offset);
        }
        catch (IOException e) when (e.HResult is Errno.ENOSPC or Errno.EDQUOT)
        {
            throw new ExportException(ExportError.NoSpace, $"Writing '{_path}' at {offset}: {e.Message}", e);
        }
    }

    /// <summary>Walks SEEK_DATA / SEEK_HOLE from <paramref name="offset"/>; runs on the thread pool.</summary>
    private void MapExtents(long offset, long length, int maxExtents, List<Extent> extents)
    {
        long end = offset + length;
        long position = offset;
        int added = 0;
        while (position < end && added < maxExtents)
        {
            long data = LibcFile.Seek(_handle, position, LibC.SEEK_DATA, out int errno);
            if (data < 0)
            {
                if (errno == Errno.ENXIO)
                {
                    // No data from here to the end of the file.
                    data = end;
                }
                else if (errno is Errno.EINVAL || IsUnsupported(errno))
                {
                    if (position == offset)
                    {
                        _seekDataUnsupported = true;
                    }

                    Append(extents, ref added, end - position, ExtentState.Data);
                    return;
                }
                else
                {
                    throw LibcFile.Failure(errno, $"Mapping allocation (lseek SEEK_DATA at {position})", _path);
                }
            }

            ExtentState state;
            long next;
            if (data > position)
            {
                state = ExtentState.Hole | ExtentState.Zero;
                next = Math.Min(data, end);
            }
            else
            {
                long hole = LibcFile.Seek(_handle, position, LibC.SEEK_HOLE, out errno);
                if (hole < 0)
                {
                    // The file shrank under us (ENXIO) or the call failed: say nothing false.
                    hole = end;
                }

                state = ExtentState.Data;
                next = Math.Min(Math.Max(hole, position + 1), end);
            }

            Append(extents, ref added, next - position, state);
            position = next;
        }
    }

    /// <summary>Adds a run, merged into the previous one if this call added it and the states match.</summary>
    private static void Append(List<Extent> extents, ref int added, long length, ExtentState state)
    {
        if (added > 0 && extents[^1].State == state)
        {
            extents[^1] = extents[^1] with { Length = extents[^1].Length + length };
            return;
        }

        extents.Add(new Extent(length, state));
        added++;
    }

    private void ThrowIfReadOnly()
    {
        if (_readOnly)
        {
            throw new ExportException(ExportError.ReadOnly, $"The export of '{_path}' is read-only.");
        }
    }
}
