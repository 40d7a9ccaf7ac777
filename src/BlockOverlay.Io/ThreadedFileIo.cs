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
/// Short reads and writes are looped over; EINTR is retried. No state of its own: the
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
        var next = (byte*)pin.Pointer;
        var remaining = data.Length;
        while (remaining > 0)
        {
            var iov = new LibC.IoVec { Base = next, Length = (nuint)remaining };
            var written = LibC.pwritev2(handle, &iov, 1, offset, LibC.RWF_DSYNC);
            if (written < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Errno.EINTR)
                {
                    continue;
                }

                throw Errno.Exception("pwritev2(RWF_DSYNC)", path, offset, errno);
            }

            if (written == 0)
            {
                throw FileDevice.NoProgress("pwritev2(RWF_DSYNC)", path, offset);
            }

            next += written;
            offset += written;
            remaining -= (int)written;
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
