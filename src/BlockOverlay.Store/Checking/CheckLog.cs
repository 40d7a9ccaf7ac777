namespace BlockOverlay.Store.Checking;

/// <summary>
/// Collects a check's findings: every problem counted in its class, the first
/// <see cref="ExamplesPerClass"/> of each described (a badly damaged store may have millions),
/// and notes on what was checked.
/// </summary>
internal sealed class CheckLog
{
    public const int ExamplesPerClass = 20;
    private readonly SortedDictionary<StoreProblemKind, (long Count, List<string> Examples)> _problems = [];
    private readonly List<string> _notes = [];

    public void Problem(StoreProblemKind kind, string detail)
    {
        var (count, examples) = _problems.GetValueOrDefault(kind, (0, []));
        if (examples.Count < ExamplesPerClass)
        {
            examples.Add(detail);
        }

        _problems[kind] = (count + 1, examples);
    }

    public void Note(string note) => _notes.Add(note);

    /// <summary>"1 batch", "2 batches": a count with its noun, for the notes.</summary>
    public static string Count(long count, string one, string? many = null) => count == 1 ? $"1 {one}" : $"{count} {many ?? one + "s"}";

    public CheckReport Report() =>
        new([.. _problems.Select(p => new ProblemCount(ProblemClass.Of(p.Key), p.Value.Count, p.Value.Examples))], [.. _notes]);
}
