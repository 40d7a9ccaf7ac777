using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// The .NET garbage collector's families, read from the runtime at the start of each scrape:
/// collections by generation, the time the GC held the server's threads paused, and the bytes
/// allocated. A pause stops every connection at once, so it is latency every tenant feels, and
/// a neighbour's traffic can cause it: the operator needs it beside the per-instance figures.
/// Not prometheus-net's <c>DotNetStats</c>: it has the collection counts but not the pause time,
/// and it would bring its process families into a registry that shows only the server's own.
/// </summary>
internal sealed class RuntimeFamilies
{
    private static readonly string[] Generations = ["0", "1", "2"];
    private readonly Counter _collections;
    private readonly Counter _pause;
    private readonly Counter _allocated;

    public RuntimeFamilies(IMetricFactory factory)
    {
        _collections = factory.CreateCounter("blockoverlay_gc_collections_total",
            "Garbage collections of the server process, by generation (a generation-2 collection counts in 0 and 1 too).", ["generation"]);
        _pause = factory.CreateCounter("blockoverlay_gc_pause_seconds_total",
            "Time the garbage collector held the server's threads paused, every connection's requests with them.");
        _allocated = factory.CreateCounter("blockoverlay_gc_allocated_bytes_total",
            "Bytes the server process allocated on the managed heap.");
    }

    /// <summary>Copies the runtime's counters into the families, at the start of a scrape.</summary>
    public void Update()
    {
        for (int generation = 0; generation < Generations.Length; generation++)
        {
            _collections.WithLabels(Generations[generation]).IncTo(GC.CollectionCount(generation));
        }

        _pause.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
        _allocated.IncTo(GC.GetTotalAllocatedBytes());
    }
}
