using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// The base images open for a server's instances, shared: every instance made on the same base
/// reads it through one open image, which was checked against the identity once, when it was
/// first opened. A thousand instances of one base cost one open and one fingerprint, not a
/// thousand; and a new instance of a file base that is open takes the open base's identity
/// (<see cref="IdentifyAsync"/>) instead of reading it again.
/// </summary>
/// <remarks>
/// <para>
/// <b>States.</b> A base is open while at least one lease on it is; the last lease to go closes
/// it. The next open checks the image again (so a base replaced while none of its instances
/// was open is refused then, as before).
/// </para>
/// <para>
/// <b>When a base is read again.</b> Opened for an instance: when it is not open already (the
/// first instance, or the first after all closed). Identified for a new instance: unless a file
/// base is open from that path and the file there is still the one open, unchanged (its
/// <see cref="FileStamp"/>: device, inode, size and change time, one statx); a file replaced,
/// resized or written since is read and fingerprinted anew, and the new instance is made on
/// what is there now. A snapshot in Ceph is always identified anew (it reads no data, but the
/// stamp of a file has no counterpart there).
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> guards the table and the counts, memory work only; a base is
/// opened outside it by the first caller, and callers that come meanwhile wait for that open
/// (different bases open in parallel). If the open fails, it is forgotten and all of them fail.
/// </para>
/// </remarks>
public sealed class BaseImages(CephClientOptions? ceph = null)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<BaseIdentity, Shared> _open = [];
    private long _checks;

    /// <summary>How many times a base was read for its fingerprint: opened and checked for an instance, or identified for a new one.</summary>
    public long Checks => Interlocked.Read(ref _checks);

    /// <summary>Bases open (or being opened) now.</summary>
    public int OpenCount
    {
        get
        {
            lock (_lock)
            {
                return _open.Count;
            }
        }
    }

    /// <summary>
    /// A lease on the base an instance was made on: the open image if one is (or is being
    /// opened), else the image opened and checked now (<see cref="BaseImageChangedException"/>
    /// if it changed: then every caller waiting for that open gets the same failure).
    /// </summary>
    public async Task<BaseLease> OpenAsync(BaseIdentity expected)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Shared shared;
        bool first;
        lock (_lock)
        {
            first = !_open.TryGetValue(expected, out shared!);
            if (first)
            {
                shared = new Shared();
                _open.Add(expected, shared);
            }

            shared.Leases++;
        }

        if (first)
        {
            try
            {
                var image = await BaseImage.OpenAsync(expected, ceph);
                Interlocked.Increment(ref _checks);
                shared.Opened.SetResult(image);
            }
            catch (Exception e)
            {
                lock (_lock)
                {
                    _open.Remove(expected);
                }

                shared.Opened.SetException(e);
            }
        }

        return new BaseLease(this, expected, await shared.Opened.Task);
    }

    /// <summary>
    /// The identity a new instance on the image at <paramref name="path"/> records: an open file
    /// base's, reading nothing, if the file at that path is still the one open and unchanged; else
    /// the image opened, fingerprinted and closed (see the remarks). A missing or unreadable
    /// image is a <see cref="BaseImageChangedException"/> naming it.
    /// </summary>
    public async Task<BaseIdentity> IdentifyAsync(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!RbdAddress.IsRbd(path) && FindOpen(System.IO.Path.GetFullPath(path)) is { } open)
        {
            return open;
        }

        await using var image = BaseImage.Open(path, ceph);
        Interlocked.Increment(ref _checks);
        return await image.IdentifyAsync();
    }

    /// <summary>The identity of a base open from <paramref name="path"/> whose file is still there, unchanged; or null.</summary>
    private BaseIdentity? FindOpen(string path)
    {
        if (FileStamp.OfPath(path) is not { } now)
        {
            return null; // missing or unreadable: the full open says why
        }

        lock (_lock)
        {
            foreach (var (identity, shared) in _open)
            {
                if (identity.Path == path && shared.Opened.Task.IsCompletedSuccessfully && shared.Opened.Task.Result.Stamp == now)
                {
                    return identity;
                }
            }
        }

        return null;
    }

    internal async ValueTask ReturnAsync(BaseIdentity identity)
    {
        BaseImage? close = null;
        lock (_lock)
        {
            var shared = _open[identity];
            if (--shared.Leases == 0)
            {
                _open.Remove(identity);
                close = shared.Opened.Task.Result; // a lease exists only for an image that opened
            }
        }

        if (close is not null)
        {
            await close.DisposeAsync();
        }
    }

    private sealed class Shared
    {
        public TaskCompletionSource<BaseImage> Opened { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Leases { get; set; }
    }
}

/// <summary>One instance's hold on a shared base; disposing it gives it back (once).</summary>
public sealed class BaseLease : IAsyncDisposable
{
    private readonly BaseImages _owner;
    private readonly BaseIdentity _identity;
    private int _returned;

    internal BaseLease(BaseImages owner, BaseIdentity identity, BaseImage image) => (_owner, _identity, Image) = (owner, identity, image);

    public BaseImage Image { get; }

    public ValueTask DisposeAsync() =>
        Interlocked.Exchange(ref _returned, 1) == 0 ? _owner.ReturnAsync(_identity) : ValueTask.CompletedTask;
}
