using System.Text;
using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// A snapshot of an RBD image (<c>rbd:POOL/IMAGE@SNAP</c>) opened read-only through librbd:
/// a base image that lives in Ceph. Read at any offset and length inside it.
/// </summary>
/// <remarks>
/// <para><b>Read-only twice over.</b> The image is opened with rbd_open_read_only at the
/// snapshot, and a snapshot's data cannot change: no write call exists here and librbd would
/// refuse one. No lock is taken, so any number of servers and hosts read one snapshot.</para>
/// <para><b>Identity.</b> A snapshot is immutable, so what it is follows from its ids: the
/// image's id (a new image of the same name gets a new one) and the snapshot's id (a snapshot
/// removed and made again under the same name gets a new one). Together with the size they
/// identify its content without reading a byte.</para>
/// <para><b>Locking.</b> None: reads are independent; the handle is reference-counted per
/// call, as in <see cref="RbdDevice"/>.</para>
/// </remarks>
public sealed class RbdSnapshot : IAsyncDisposable
{
    private const int IdRoom = 64;
    private readonly RbdImageHandle _image;

    private RbdSnapshot(RbdImageHandle image, RbdAddress address, long size, string imageId, ulong snapshotId)
    {
        _image = image;
        Address = address;
        Size = size;
        ImageId = imageId;
        SnapshotId = snapshotId;
    }

    public RbdAddress Address { get; }

    /// <summary>The snapshot's size in bytes (the image's size when it was taken).</summary>
    public long Size { get; }

    /// <summary>The image's id in its pool, which no other image of the pool ever has.</summary>
    public string ImageId { get; }

    /// <summary>The snapshot's id in its image, never reused by another snapshot of it.</summary>
    public ulong SnapshotId { get; }

    /// <summary>Opens <paramref name="address"/>, which must name a snapshot; blocks for the round trips to the cluster.</summary>
    public static RbdSnapshot Open(RbdAddress address, CephClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        if (address.Snapshot is not { } snapshot)
        {
            throw new ArgumentException($"{address} is an image, which can change under its instances: a base on RBD is a snapshot, rbd:POOL/IMAGE@SNAP", nameof(address));
        }

        var image = RbdImageHandle.Connect(address, options);
        try
        {
            image.OpenImage(address, readOnly: true);
            nint handle = image.DangerousGetHandle();
            Check(LibRbd.rbd_get_size(handle, out ulong size), "rbd_get_size", address);
            Check(LibRbd.rbd_snap_get_id(handle, snapshot, out ulong snapshotId), "rbd_snap_get_id", address);
            return new RbdSnapshot(image, address, (long)size, ImageIdOf(handle, address), snapshotId);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    /// <summary><see cref="Open"/> on an I/O thread.</summary>
    public static async Task<RbdSnapshot> OpenAsync(RbdAddress address, CephClientOptions options)
    {
        RbdSnapshot? snapshot = null;
        await BlockingCalls.Run(() => snapshot = Open(address, options));
        return snapshot!;
    }

    /// <summary>Reads <paramref name="buffer"/>'s length at <paramref name="offset"/>, all of it inside the snapshot.</summary>
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        if (offset < 0 || offset > Size - buffer.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"a read of {buffer.Length} bytes at {offset} is not inside {Address} ({Size} bytes)");
        }

        long result;
        try
        {
            result = await ReadCall(offset, buffer);
        }
        catch (ObjectDisposedException e)
        {
            throw new IOException($"rbd_aio_read on {Address}: the snapshot is closed", e);
        }

        if (result != buffer.Length)
        {
            throw result < 0
                ? new IOException($"rbd_aio_read on {Address} at offset {offset} failed: {Errno.Describe((int)-result)}", (int)-result)
                : new IOException($"rbd_aio_read on {Address} at offset {offset}: {result} of {buffer.Length} bytes", Errno.EIO);
        }
    }

    /// <summary>Closes the image and the connection (when the last read in flight returns).</summary>
    public async ValueTask DisposeAsync() => await BlockingCalls.Run(_image.Dispose);

    private unsafe Task<long> ReadCall(long offset, Memory<byte> buffer) =>
        _image.RunAsync(buffer, (image, data, completion) => LibRbd.rbd_aio_read2(image, (ulong)offset, (nuint)buffer.Length, data, completion, 0));

    private static unsafe string ImageIdOf(nint image, RbdAddress address)
    {
        byte* id = stackalloc byte[IdRoom];
        Check(LibRbd.rbd_get_id(image, id, IdRoom), "rbd_get_id", address);
        return Encoding.UTF8.GetString(new ReadOnlySpan<byte>(id, IdRoom).TrimEnd((byte)0));
    }

    private static void Check(int result, string call, RbdAddress address)
    {
        if (result < 0)
        {
            throw new IOException($"{call} of {address} failed: {Errno.Describe(-result)}", -result);
        }
    }
}
