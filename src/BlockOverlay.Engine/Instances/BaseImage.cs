using System.Runtime.CompilerServices;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;
using BlockOverlay.Store.Format;
using K4os.Hash.xxHash;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// A read-only raw image under one or more instances: a file, or a snapshot in Ceph
/// (<c>rbd:POOL/IMAGE@SNAP</c>). Never opened for writing (DESIGN.md, invariant 8): a file is read
/// through a read-only <see cref="FileExport"/>, which also gives SEEK_DATA/SEEK_HOLE
/// allocation for block status; a snapshot through librbd, opened read-only
/// (<see cref="RbdSnapshot"/>), and shown as data throughout.
/// </summary>
/// <remarks>
/// <b>Identity.</b> An instance records its base's path (or address), size and a fingerprint.
/// For a file: XXH64 over the size, the first and last MiB and 16 evenly spaced 4 KiB
/// samples. That costs a few milliseconds on any size and catches a replaced, resized,
/// truncated or re-made image; an in-place edit that touches none of the sampled bytes goes
/// unnoticed, which is the price of not hashing the whole image on every open. For a
/// snapshot: XXH64 over the size, the image's id and the snapshot's id. A snapshot cannot
/// change, and a re-made image or snapshot gets new ids, so that is exact and reads nothing.
/// </remarks>
public sealed class BaseImage : IAsyncDisposable
{
    private const int EdgeBytes = 1 << 20;
    private const int Samples = 16;
    private const int SampleBytes = 4096;
    private readonly FileExport? _file;
    private readonly RbdSnapshot? _snapshot;

    private BaseImage(string path, FileExport file)
    {
        Path = path;
        _file = file;
        Stamp = file.Stamp();
    }

    private BaseImage(RbdSnapshot snapshot)
    {
        Path = snapshot.Address.ToString();
        _snapshot = snapshot;
    }

    /// <summary>The file's absolute path, or the snapshot's address as <c>rbd:POOL/IMAGE@SNAP</c>.</summary>
    public string Path { get; }

    public long Size => _snapshot?.Size ?? _file!.Size;

    /// <summary>A file's stamp when it was opened (device, inode, size, change time); null for a snapshot.</summary>
    public FileStamp? Stamp { get; }

    /// <summary>
    /// Opens a base image read-only, checking it is the one an instance was made on. An
    /// <c>rbd:</c> base is read from the cluster <paramref name="ceph"/> names (by default the
    /// Ceph conventions: $CEPH_CONF, client.admin).
    /// </summary>
    public static async Task<BaseImage> OpenAsync(BaseIdentity expected, CephClientOptions? ceph = null)
    {
        ArgumentNullException.ThrowIfNull(expected);
        var image = RbdAddress.IsRbd(expected.Path) ? await OpenSnapshotAsync(expected.Path, ceph ?? new()) : Open(expected.Path, ceph);
        try
        {
            var actual = await image.IdentifyAsync();
            if (actual.Size != expected.Size || actual.Fingerprint != expected.Fingerprint)
            {
                throw new BaseImageChangedException(
                    $"base image {expected.Path} changed since the instance was made on it " +
                    $"(size {expected.Size} -> {actual.Size}, fingerprint {expected.Fingerprint:x16} -> {actual.Fingerprint:x16}); " +
                    "restore the original image or delete the instance");
            }

            return image;
        }
        catch
        {
            await image.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Opens an image read-only (for a snapshot in Ceph, this blocks for the round trips to the
    /// cluster <paramref name="ceph"/> names); a missing or unreadable image gets a message naming it.
    /// </summary>
    public static BaseImage Open(string path, CephClientOptions? ceph = null)
    {
        if (RbdAddress.IsRbd(path))
        {
            try
            {
                return new BaseImage(RbdSnapshot.Open(RbdAddress.Parse(path), ceph ?? new()));
            }
            catch (Exception e) when (IsOpenFailure(e))
            {
                throw CannotOpen(path, e);
            }
        }

        string full = System.IO.Path.GetFullPath(path);
        try
        {
            return new BaseImage(full, FileExport.Open(full, readOnly: true));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw CannotOpen(full, e);
        }
    }

    /// <summary>The identity an instance records (see the remarks).</summary>
    public async Task<BaseIdentity> IdentifyAsync()
    {
        var state = new XXH64.State();
        XXH64.Reset(ref state);
        XXH64.Update(ref state, BitConverter.GetBytes(Size));
        if (_snapshot is not null)
        {
            XXH64.Update(ref state, System.Text.Encoding.UTF8.GetBytes(_snapshot.ImageId));
            XXH64.Update(ref state, BitConverter.GetBytes(_snapshot.SnapshotId));
            return new BaseIdentity(Path, Size, XXH64.Digest(state));
        }

        foreach (var (offset, length) in SampleRanges(Size))
        {
            var bytes = new byte[length];
            await _file!.ReadAsync(offset, bytes);
            XXH64.Update(ref state, bytes);
        }

        return new BaseIdentity(Path, Size, XXH64.Digest(state));
    }

    /// <summary>Reads bytes at any offset; past the image's end, zeros.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        long inside = Math.Clamp(Size - offset, 0, buffer.Length);
        if (inside > 0 && _snapshot is not null)
        {
            await _snapshot.ReadAsync(offset, buffer[..(int)inside]);
        }
        else if (inside > 0)
        {
            await _file!.ReadAsync(offset, buffer[..(int)inside]);
        }

        buffer.Span[(int)inside..].Clear();
    }

    /// <summary>
    /// Allocation of a range; past the image's end it is a hole of zeros. Like any export it
    /// may describe less than asked (when <paramref name="maxExtents"/> runs out).
    /// </summary>
    public async ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents)
    {
        long inside = Math.Clamp(Size - offset, 0, length);
        int before = extents.Count;
        if (inside > 0 && _snapshot is not null)
        {
            // librbd could tell which objects exist (rbd_diff_iterate2); data throughout is true, if less sparse.
            extents.Add(new Extent(inside, ExtentState.Data));
        }
        else if (inside > 0)
        {
            await _file!.GetAllocationAsync(offset, inside, maxExtents, extents);
        }

        long covered = extents.Skip(before).Sum(e => e.Length);
        if (covered == inside && inside < length && extents.Count - before < maxExtents)
        {
            extents.Add(new Extent(length - inside, ExtentState.Hole | ExtentState.Zero));
        }
    }

    public ValueTask DisposeAsync() => _snapshot?.DisposeAsync() ?? _file!.DisposeAsync();

    private static async Task<BaseImage> OpenSnapshotAsync(string address, CephClientOptions ceph)
    {
        try
        {
            return new BaseImage(await RbdSnapshot.OpenAsync(RbdAddress.Parse(address), ceph));
        }
        catch (Exception e) when (IsOpenFailure(e))
        {
            throw CannotOpen(address, e);
        }
    }

    /// <summary>What opening a snapshot throws for a bad address, a missing image or snapshot, or an unreachable cluster.</summary>
    private static bool IsOpenFailure(Exception e) => e is IOException or FormatException or ArgumentException;

    private static BaseImageChangedException CannotOpen(string image, Exception e) => new($"cannot open base image {image}: {e.Message}", e);

    private static IEnumerable<(long Offset, int Length)> SampleRanges(long size)
    {
        yield return (0, (int)Math.Min(size, EdgeBytes));
        if (size > EdgeBytes)
        {
            long tail = Math.Max(EdgeBytes, size - EdgeBytes);
            yield return (tail, (int)(size - tail));
        }

        for (int i = 1; i <= Samples && size > SampleBytes; i++)
        {
            long offset = size / (Samples + 1) * i / SampleBytes * SampleBytes;
            yield return (offset, (int)Math.Min(SampleBytes, size - offset));
        }
    }
}

/// <summary>A base image is missing, unreadable, or not the one an instance was made on.</summary>
public sealed class BaseImageChangedException : Exception
{
    public BaseImageChangedException(string message) : base(message) { }

    public BaseImageChangedException(string message, Exception inner) : base(message, inner) { }
}
