namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>One connection's count of generated inputs (options and requests); merged by the run.</summary>
internal sealed class FuzzTally
{
    public long Inputs { get; set; }
}
