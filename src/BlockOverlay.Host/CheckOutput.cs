using System.Text;
using System.Text.Json.Serialization;
using BlockOverlay.Store.Checking;

namespace BlockOverlay.Host;

/// <summary>One class of problem as <c>store check</c> prints it (<see cref="ProblemClass"/>, counted, with the first few).</summary>
internal sealed record ProblemOutput(string Class, string Title, long Count, IReadOnlyList<string> Examples, bool Repairable, string Remedy)
{
    public static ProblemOutput Of(ProblemCount p) =>
        new(p.Class.Code, p.Class.Title, p.Count, p.Examples, p.Class.Repairable, p.Class.Remedy);
}

/// <summary>What <c>--repair</c> did, what it left and why, and what the check after it found.</summary>
internal sealed record RepairOutput(IReadOnlyList<string> Done, IReadOnlyList<string> Refused, IReadOnlyList<ProblemOutput> Remaining);

/// <summary>
/// The report of <c>store check</c>: the problems found (by class), what was checked (notes), and
/// with <c>--repair</c> the repair. The same object is printed as lines (<see cref="Text"/>) or as
/// JSON (<see cref="CheckJson"/>), so the two always say the same.
/// </summary>
internal sealed record CheckOutput(string Store, bool Clean, IReadOnlyList<ProblemOutput> Problems, IReadOnlyList<string> Notes, RepairOutput? Repair)
{
    /// <summary>Problems left when the command ends: those found, or after a repair those the second check found.</summary>
    [JsonIgnore]
    public long Left => (Repair?.Remaining ?? Problems).Sum(p => p.Count);

    public static CheckOutput Of(string store, CheckReport found, RepairReport? repair) =>
        new(store, found.Clean, [.. found.Problems.Select(ProblemOutput.Of)], found.Notes,
            repair is null ? null : new RepairOutput(repair.Done, repair.Refused, [.. repair.After.Problems.Select(ProblemOutput.Of)]));

    /// <summary>Lines for people: the verdict, each class with its count and examples, what was checked, the repair.</summary>
    public string Text()
    {
        var text = new StringBuilder();
        long found = Problems.Sum(p => p.Count);
        text.AppendLine(Clean ? $"store {Store}: clean" : $"store {Store}: {found} problem{(found == 1 ? "" : "s")} found");
        AppendProblems(text, Problems, Repair is null);
        AppendList(text, "checked:", Notes);

        if (Repair is { } repair)
        {
            AppendList(text, "repaired:", repair.Done);
            AppendList(text, "not repaired:", repair.Refused);
            long left = repair.Remaining.Sum(p => p.Count);
            text.AppendLine(left == 0 ? "after the repair: clean" : $"after the repair: {left} problem{(left == 1 ? "" : "s")} left");
            AppendProblems(text, repair.Remaining, withRemedy: false);
        }

        return text.ToString();
    }

    private static void AppendProblems(StringBuilder text, IReadOnlyList<ProblemOutput> problems, bool withRemedy)
    {
        foreach (var p in problems)
        {
            text.AppendLine($"  {p.Title}: {p.Count}");
            foreach (var example in p.Examples)
            {
                text.AppendLine($"    {example}");
            }

            if (p.Count > p.Examples.Count)
            {
                text.AppendLine($"    ... and {p.Count - p.Examples.Count} more");
            }

            if (withRemedy)
            {
                text.AppendLine($"    {(p.Repairable ? "--repair" : "not repairable")}: {p.Remedy}");
            }
        }
    }

    private static void AppendList(StringBuilder text, string title, IReadOnlyList<string> lines)
    {
        if (lines.Count > 0)
        {
            text.AppendLine(title);
            foreach (var line in lines)
            {
                text.AppendLine($"  {line}");
            }
        }
    }
}

/// <summary>Source-generated JSON for <c>store check --json</c> (no reflection at run time, as the rest of the Host).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(CheckOutput))]
internal sealed partial class CheckJson : JsonSerializerContext;
