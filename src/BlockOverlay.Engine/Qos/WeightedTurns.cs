using System.Runtime.CompilerServices;

namespace BlockOverlay.Engine.Qos;

/// <summary>
/// Whose turn it is among contenders for one resource, in proportion to their weights by bytes
/// served (start-time fair queueing): each contender has a finish tag, advanced by bytes ÷ weight
/// when it is served, and the one with the smallest start tag goes next. A start tag is never
/// behind the virtual time (the start tag of the last turn), so a contender that was idle does
/// not come back with credit it saved and starve the others.
/// </summary>
/// <remarks>
/// Used by the background write-back loop alone (one thread at a time, no lock). Contenders are
/// held weakly: a closed instance's tag goes with it.
/// </remarks>
internal sealed class WeightedTurns<T> where T : class
{
    private readonly ConditionalWeakTable<T, StrongBox<double>> _finish = [];
    private double _virtualTime;

    /// <summary>The contender whose turn it is (on a tie, the first in <paramref name="contenders"/>), or null if there is none.</summary>
    public T? Next(IEnumerable<T> contenders) => contenders.MinBy(Start);

    /// <summary>Records that <paramref name="served"/>, of <paramref name="weight"/>, was given <paramref name="bytes"/>.</summary>
    public void Served(T served, long bytes, int weight)
    {
        double start = Start(served);
        _virtualTime = start;
        _finish.GetOrCreateValue(served).Value = start + ((double)bytes / Math.Max(weight, 1));
    }

    private double Start(T contender) =>
        Math.Max(_finish.TryGetValue(contender, out var finish) ? finish.Value : 0, _virtualTime);
}
