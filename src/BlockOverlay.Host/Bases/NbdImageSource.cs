using BlockOverlay.LibNbd;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// An image served over NBD (any URI libnbd takes: <c>nbd://</c>, <c>nbd+unix://</c>, …),
/// read through the libnbd binding. Zero runs come from <c>base:allocation</c> block status
/// when the server offers it; otherwise every byte is read.
/// </summary>
/// <remarks>
/// libnbd's calls are synchronous and one request is in flight at a time: simple, and the
/// CLI has nothing else to do meanwhile. Every libnbd failure becomes an
/// <see cref="IOException"/> naming the URI, so the command reports it on one line.
/// </remarks>
internal sealed class NbdImageSource : IImageSource
{
    private const int DefaultMaxRead = 4 << 20;
    private const uint MaxStatusBytes = 1u << 30; // the protocol's lengths are 32-bit; keep well inside

    private static readonly string[] Schemes = ["nbd", "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock"];

    private readonly NbdClient _client;
    private readonly bool _hasAllocation;
    private readonly int _maxRead;

    private NbdImageSource(NbdClient client, string uri)
    {
        _client = client;
        Name = uri;
        Size = client.GetSize();
        _hasAllocation = client.CanMetaContext(MetaContexts.BaseAllocation);
        long serverMax = client.GetBlockSize(BlockSizeConstraint.Maximum);
        _maxRead = serverMax > 0 ? (int)Math.Min(serverMax, DefaultMaxRead) : DefaultMaxRead;
    }

    public string Name { get; }

    public long Size { get; }

    /// <summary>Whether <paramref name="image"/> is an NBD URI rather than a file name.</summary>
    public static bool IsUri(string image) =>
        image.IndexOf("://", StringComparison.Ordinal) is > 0 and var end && Schemes.Contains(image[..end]);

    public static NbdImageSource Connect(string uri)
    {
        NbdClient client;
        try
        {
            client = new NbdClient();
        }
        catch (DllNotFoundException e)
        {
            throw new IOException($"cannot read {uri}: libnbd is not installed (Debian: apt-get install libnbd0)", e);
        }

        try
        {
            client.AddMetaContext(MetaContexts.BaseAllocation);
            client.ConnectUri(uri);
            return new NbdImageSource(client, uri);
        }
        catch (NbdException e)
        {
            client.Dispose();
            throw Failure(uri, e);
        }
    }

    public ValueTask<ImageRun> RunAtAsync(long offset, long maxLength)
    {
        if (!_hasAllocation)
        {
            return ValueTask.FromResult(new ImageRun(maxLength, Zeros: false));
        }

        uint count = (uint)Math.Min(maxLength, MaxStatusBytes);
        var extents = Call(() => _client.BlockStatus(count, (ulong)offset, CommandFlags.ReqOne));
        if (!extents.TryGetValue(MetaContexts.BaseAllocation, out var allocation) || allocation.Count == 0 || allocation[0].Length == 0)
        {
            throw new IOException($"cannot read {Name}: the server answered block status at {offset} without an extent");
        }

        var first = allocation[0];
        bool zeros = ((AllocationState)first.Flags).HasFlag(AllocationState.Zero);
        return ValueTask.FromResult(new ImageRun(Math.Min(first.Length, count), zeros));
    }

    public ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        for (int done = 0; done < buffer.Length; done += _maxRead)
        {
            var piece = buffer.Slice(done, Math.Min(_maxRead, buffer.Length - done));
            Call(() => _client.Pread(piece.Span, (ulong)(offset + done)));
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            _client.Shutdown();
        }
        catch (NbdException)
        {
            // Only the polite goodbye failed (the server may be gone): closing the handle below is all that is left to do.
        }

        _client.Dispose();
        return ValueTask.CompletedTask;
    }

    private T Call<T>(Func<T> call)
    {
        try
        {
            return call();
        }
        catch (NbdException e)
        {
            throw Failure(Name, e);
        }
    }

    private void Call(Action call) => Call(() =>
    {
        call();
        return 0;
    });

    private static IOException Failure(string uri, NbdException e) => new($"cannot read {uri}: {e.Message}", e);
}
