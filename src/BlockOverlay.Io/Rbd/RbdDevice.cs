using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io.Rbd;

/// <summary>
/// The store in one RBD image of a Ceph cluster, through librbd: superblocks, journal,
/// checkpoints and data at the same offsets as in a store file.
/// </summary>
/// <remarks>
/// <para><b>Opening.</b> Connect (<see cref="CephClientOptions"/>), open the image, take its
/// <i>managed exclusive lock</i> (rbd_lock_acquire): while this device is open no other client
/// can write the image, and librbd refuses to hand the lock over when asked (the file store's
/// flock has the same job). A second opener is refused, naming the owner. With
/// <c>takeover</c> the opener first breaks the owner's lock (rbd_lock_break), which
/// <i>blocklists</i> the owner at the OSDs: a paused or partitioned owner can never write
/// again; its next write fails with EBLOCKLISTED and <see cref="Fenced"/> completes. librbd
/// also breaks, by itself, a lock whose owner has been gone for its watch timeout (~30 s).</para>
/// <para><b>I/O.</b> rbd_aio_read2 / rbd_aio_write2 / rbd_aio_flush with a completion callback
/// (<see cref="RbdCompletion"/>); nothing blocks a thread while the OSDs work. Gather writes
/// take the interface's default (gathered into one buffer, then one rbd_aio_write2): a copy
/// is small beside the replicas' round trip, and rbd_aio_writev would need a second way to pin
/// and run a call here, unproved without a cluster.</para>
/// <para><b>Durability.</b> The client cache is off (rbd_cache = false), so a write completes
/// only when every replica OSD has committed it: every write is durable when its task
/// completes, the equivalent of O_DIRECT + RWF_DSYNC, and <see cref="FlushAsync"/> has nothing
/// left to do but asks librbd anyway. A write still only carries its own bytes: the store's
/// flush(X) writes X's blocks and X's journal records, as on a file. A new image is thin
/// (unwritten objects read as zeros), and writing one costs no metadata commit, so unlike a
/// store file it is not written through at creation.</para>
/// <para><b>Locking.</b> None inside: calls are independent. The image handle is
/// reference-counted per call (<see cref="RbdImageHandle"/>), so disposing during I/O closes
/// it (and releases the lock) when the last call returns.</para>
/// </remarks>
public sealed class RbdDevice : IBlockDevice
{
    /// <summary>EBLOCKLISTED (ESHUTDOWN on Linux): this client was blocklisted by a takeover.</summary>
    public const int EBLOCKLISTED = 108;

    private const int EROFS = 30;
    private const int EBUSY = 16;

    private readonly RbdImageHandle _image;
    private readonly TaskCompletionSource _fenced = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private RbdDevice(RbdImageHandle image, RbdAddress address, long size, string lockOwner)
    {
        _image = image;
        Address = address;
        Size = size;
        LockOwner = lockOwner;
    }

    /// <summary>The image this device was opened at.</summary>
    public RbdAddress Address { get; }

    /// <summary>"client.N": this connection's name in the cluster (as `rbd status` lists watchers).</summary>
    public string ClientName => _image.ClientName;

    /// <summary>The lock owner as others see it (the client's address, e.g. 127.0.0.1:0/1975998535): what a second opener's error names.</summary>
    public string LockOwner { get; }

    /// <inheritdoc/>
    public long Size { get; }

    /// <summary>Completes when a write failed because another server took the image over (this client is blocklisted).</summary>
    public Task Fenced => _fenced.Task;

    /// <summary>
    /// Opens an existing image and takes its exclusive lock; with <paramref name="takeover"/>,
    /// breaks (and blocklists) a current owner first. Throws <see cref="IOException"/> when the
    /// image does not exist or is in use (naming the owner), or the cluster cannot be reached.
    /// </summary>
    public static async Task<RbdDevice> OpenAsync(RbdAddress address, CephClientOptions options, bool takeover = false)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        if (address.Snapshot is not null)
        {
            throw new ArgumentException($"{address} is a snapshot: a store is an image (rbd:POOL/IMAGE)", nameof(address));
        }

        RbdDevice? device = null;
        await BlockingCalls.Run(() => device = Open(address, options, takeover));
        return device!;
    }

    /// <summary>
    /// Creates an image of <paramref name="size"/> bytes (a positive multiple of the block size)
    /// with the exclusive-lock feature, and returns it open and locked. Refuses an image that
    /// exists; removes the image again if opening it fails.
    /// </summary>
    public static async Task<RbdDevice> CreateAsync(RbdAddress address, long size, CephClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(options);
        if (size <= 0 || size % IBlockDevice.BlockSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"store size must be a positive multiple of {IBlockDevice.BlockSize}");
        }

        await BlockingCalls.Run(() => Create(address, size, options));
        try
        {
            return await OpenAsync(address, options);
        }
        catch
        {
            await RemoveAsync(address, options);
            throw;
        }
    }

    /// <summary>Removes an image (none there is not an error): for a creation that failed half-way, and tests.</summary>
    public static Task RemoveAsync(RbdAddress address, CephClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        return BlockingCalls.Run(() =>
        {
            using var connection = RbdImageHandle.Connect(address, options);
            try
            {
                int result = LibRbd.rbd_remove(connection.PoolContext, address.Image);
                if (result < 0 && result != -Errno.ENOENT)
                {
                    throw new IOException($"rbd_remove of {address} failed: {Errno.Describe(-result)}", -result);
                }
            }
            finally
            {
                connection.ReleaseConnection();
            }
        });
    }

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        BlockAlignment.Validate(Size, offset, buffer);
        unsafe
        {
            return RunAsync("rbd_aio_read", offset, buffer, expected: buffer.Length,
                (image, data, completion) => LibRbd.rbd_aio_read2(image, (ulong)offset, (nuint)buffer.Length, data, completion, 0));
        }
    }

    /// <inheritdoc/>
    /// <remarks>Every write is durable when it completes (the client cache is off), whatever <paramref name="durable"/> says.</remarks>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        BlockAlignment.Validate(Size, offset, data);
        unsafe
        {
            return RunAsync("rbd_aio_write", offset, data, expected: null,
                (image, bytes, completion) => LibRbd.rbd_aio_write2(image, (ulong)offset, (nuint)data.Length, bytes, completion, 0));
        }
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync()
    {
        unsafe
        {
            return RunAsync("rbd_aio_flush", 0, ReadOnlyMemory<byte>.Empty, expected: null,
                (image, _, completion) => LibRbd.rbd_aio_flush(image, completion));
        }
    }

    /// <inheritdoc/>
    /// <remarks>Closing the image releases its lock.</remarks>
    public async ValueTask DisposeAsync() => await BlockingCalls.Run(_image.Dispose);

    private static RbdDevice Open(RbdAddress address, CephClientOptions options, bool takeover)
    {
        var image = RbdImageHandle.Connect(address, options);
        try
        {
            image.OpenImage(address, readOnly: false);
            Lock(image, address, takeover);
            string owner = string.Join(", ", image.LockOwners());
            int result = LibRbd.rbd_get_size(image.DangerousGetHandle(), out ulong bytes);
            if (result < 0)
            {
                throw new IOException($"rbd_get_size of {address} failed: {Errno.Describe(-result)}", -result);
            }

            long size = (long)bytes - ((long)bytes % IBlockDevice.BlockSize);
            if (size == 0)
            {
                throw new IOException($"{address} is {bytes} bytes long: not even one {IBlockDevice.BlockSize}-byte block", Errno.EINVAL);
            }

            return new RbdDevice(image, address, size, owner);
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private static void Lock(RbdImageHandle image, RbdAddress address, bool takeover)
    {
        if (takeover)
        {
            foreach (var owner in image.LockOwners())
            {
                int broken = LibRbd.rbd_lock_break(image.DangerousGetHandle(), LibRbd.LockModeExclusive, owner);
                if (broken < 0 && broken != -Errno.ENOENT)
                {
                    throw new IOException($"cannot take {address} over from {owner}: rbd_lock_break failed: {Errno.Describe(-broken)}", -broken);
                }
            }
        }

        int result = LibRbd.rbd_lock_acquire(image.DangerousGetHandle(), LibRbd.LockModeExclusive);
        if (result is -EROFS or -EBUSY)
        {
            var owners = image.LockOwners();
            string holder = owners.Count == 0 ? "another client" : string.Join(", ", owners);
            throw new IOException(
                $"store {address} is in use: {holder} holds its exclusive lock (another server serves it); " +
                "stop that server, or if it is dead, start this one with --takeover (which fences it off)", Errno.EAGAIN);
        }

        if (result < 0)
        {
            throw new IOException($"rbd_lock_acquire on {address} failed: {Errno.Describe(-result)}", -result);
        }
    }

    private static void Create(RbdAddress address, long size, CephClientOptions options)
    {
        using var connection = RbdImageHandle.Connect(address, options);
        try
        {
            int order = 0; // librbd's default: 4 MiB objects
            int result = LibRbd.rbd_create2(connection.PoolContext, address.Image, (ulong)size,
                LibRbd.FeatureLayering | LibRbd.FeatureExclusiveLock, ref order);
            if (result == -Errno.EEXIST)
            {
                throw new IOException($"cannot create {address}: it already exists; a store is never created over an existing image", Errno.EEXIST);
            }

            if (result < 0)
            {
                throw new IOException($"rbd_create of {address} failed: {Errno.Describe(-result)}", -result);
            }
        }
        finally
        {
            connection.ReleaseConnection();
        }
    }

    /// <summary>Runs one aio call; a read must return <paramref name="expected"/> bytes (writes and flushes return 0).</summary>
    private async ValueTask RunAsync(string call, long offset, ReadOnlyMemory<byte> buffer, int? expected, RbdImageHandle.AioCall start)
    {
        long result;
        try
        {
            result = await _image.RunAsync(buffer, start);
        }
        catch (ObjectDisposedException e)
        {
            throw new IOException($"{call} on {Address}: the device is closed", e);
        }

        if (result < 0)
        {
            throw Failure(call, offset, (int)-result);
        }

        if (expected is not null && result != expected)
        {
            throw new IOException($"{call} on {Address} at offset {offset}: {result} of {expected} bytes", Errno.EIO);
        }
    }

    private IOException Failure(string call, long offset, int errno)
    {
        if (errno == EBLOCKLISTED)
        {
            _fenced.TrySetResult();
            return new IOException(
                $"{call} on {Address} at offset {offset} refused: this server ({ClientName}, lock owner {LockOwner}) was fenced off " +
                "(blocklisted) because another server took the store over (serve --takeover); it can never write to it again", errno);
        }

        return new IOException($"{call} on {Address} at offset {offset} failed: {Errno.Describe(errno)}", errno);
    }
}
