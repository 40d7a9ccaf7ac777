using System.Buffers;
using System.Runtime.InteropServices;
using BlockOverlay.Io.Interop;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Io;

/// <summary>
/// The threads backend of <see cref="FileDevice"/>: reads and cached writes are pread/pwrite
/// through <see cref="RandomAccess"/> on the thread pool; durable writes (pwritev2 with
/// RWF_DSYNC) and fdatasync block until the media has the data, so they run on the dedicated
/// threads of <see cref="BlockingCalls"/>, never on the pool, whose threads other tenants'
/// requests need.
/// </summary>
/// <remarks>
/// Gather writes are pwritev2 of at most IOV_MAX iovecs at a time (<see cref="IoVecs"/>), with
/// RWF_DSYNC when durable, and run on <see cref="BlockingCalls"/> durable or not: a gather is a
/// write-back batch of up to 2,048 blocks, and an O_DIRECT write of that holds its thread until
/// the device has taken all of it (milliseconds), the cost the pool must not pay; and one path
/// for both keeps one loop.
/// Short reads and writes are looped over (a short pwritev2 continues inside the iovec it ended
/// in); EINTR is retried. No state of its own: the
/// descriptor is reference-counted per call (<see cref="SafeHandle"/>), so disposing the
/// device during I/O closes it when the last call returns.
/// </remarks>
internal sealed class ThreadedFileIo(SafeFileHandle handle, string path) : IFileIo
{
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int count;
            try
            {
                count = await RandomAccess.ReadAsync(handle, buffer, offset);
            }
            catch (IOException e)
            {
                throw Errno.Wrap("pread", path, offset, e);
            }

            if (count == 0)
            {
                throw FileDevice.UnexpectedEnd("pread", path, offset);
            }

            buffer = buffer[count..];
            offset += count;
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable) =>
        durable ? new ValueTask(BlockingCalls.Run(() => WriteDurable(offset, data))) : WriteCachedAsync(offset, data);

    public ValueTask WriteGatherAsync(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, bool durable) =>
        new(BlockingCalls.Run(() => WriteGather(offset, segments, durable ? LibC.RWF_DSYNC : 0)));

    public ValueTask FlushAsync() => new(BlockingCalls.Run(SyncData));

    /// <summary>Nothing to release: the device owns the descriptor.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private async ValueTask WriteCachedAsync(long offset, ReadOnlyMemory<byte> data)
    {
        try
        {
            await RandomAccess.WriteAsync(handle, data, offset);
        }
        catch (IOException e)
        {
            throw Errno.Wrap("pwrite", path, offset, e);
        }
    }

    private unsafe void WriteDurable(long offset, ReadOnlyMemory<byte> data)
    {
        using var pin = data.Pin();
        var iov = new LibC.IoVec { Base = pin.Pointer, Length = (nuint)data.Length };
        WriteVectors(&iov, 1, offset, LibC.RWF_DSYNC);
    }

    private unsafe void WriteGather(long offset, ReadOnlyMemory<ReadOnlyMemory<byte>> segments, int flags)
    {
        var pins = new List<MemoryHandle>(segments.Length);
        var iovecs = ArrayPool<LibC.IoVec>.Shared.Rent(segments.Length);
        try
        {
            fixed (LibC.IoVec* first = iovecs)
            {
                WriteVectors(first, IoVecs.Pin(segments.Span, pins, first), offset, flags);
            }
        }
        finally
        {
            foreach (var pin in pins)
            {
                pin.Dispose();
            }

            ArrayPool<LibC.IoVec>.Shared.Return(iovecs);
        }
    }

    /// <summary>pwritev2 until all <paramref name="count"/> iovecs are written, at most <see cref="IoVecs.Max"/> per call; advances them in place.</summary>
    private unsafe void WriteVectors(LibC.IoVec* iovecs, int count, long offset, int flags)
    {
        var call = flags == LibC.RWF_DSYNC ? "pwritev2(RWF_DSYNC)" : "pwritev2";
        while (count > 0)
        {
            var written = LibC.pwritev2(handle, iovecs, Math.Min(count, IoVecs.Max), offset, flags);
            if (written < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                throw Errno.Exception(call, path, offset, errno);
            }

            if (written == 0)
            {
                throw FileDevice.NoProgress(call, path, offset);
            }

            offset += written;
            var skipped = IoVecs.Advance(iovecs, count, written);
            iovecs += skipped;
            count -= skipped;
        }
    }

    private void SyncData()
    {
        while (LibC.fdatasync(handle) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno != Errno.EINTR)
            {
                throw Errno.Exception("fdatasync", path, errno);
            }
        }
    }
}
