namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// A memory export whose reads at one offset wait until the test opens the gate: a
/// stand-in for a slow device, to show one slow request does not hold up the others.
/// </summary>
internal sealed class GatedExport(long size, long gatedOffset) : MemoryExportDouble(size, "gated")
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _held;

    /// <summary>Reads that reached the gate so far (waiting, or let through once it opened).</summary>
    public int Held => Volatile.Read(ref _held);

    public void Open() => _gate.TrySetResult();

    public override async ValueTask ReadAsync(long offset, Memory<byte> buffer)
    {
        if (offset == gatedOffset)
        {
            Interlocked.Increment(ref _held);
            await _gate.Task;
        }

        await base.ReadAsync(offset, buffer);
    }

    public override ValueTask DisposeAsync()
    {
        Open();
        return base.DisposeAsync();
    }
}
