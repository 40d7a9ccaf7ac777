using System.Collections.Concurrent;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>A memory export that admits one request each time the test says so, and remembers what each asked for.</summary>
internal sealed class PacedExport(long size) : MemoryExportDouble(size, "paced"), IPacedExport
{
    private readonly SemaphoreSlim _admissions = new(0);

    /// <summary>The bytes of each request that asked to be admitted, in order.</summary>
    public ConcurrentQueue<long> Asked { get; } = new();

    public void Admit(int requests) => _admissions.Release(requests);

    public async ValueTask AdmitAsync(long bytes, CancellationToken cancel)
    {
        Asked.Enqueue(bytes);
        await _admissions.WaitAsync(cancel);
    }

    public override ValueTask DisposeAsync()
    {
        _admissions.Dispose();
        return base.DisposeAsync();
    }
}
