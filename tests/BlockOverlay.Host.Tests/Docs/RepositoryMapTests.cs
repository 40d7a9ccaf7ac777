using System.Text.RegularExpressions;

namespace BlockOverlay.Host.Tests.Docs;

/// <summary>
/// docs/ARCHITECTURE.md stays the map of the code: every project and path it names exists, and
/// every src project and each first-level folder of one is on it. Nothing in the repository
/// names a path outside it, and every "invariant N" a comment cites is one of docs/DESIGN.md
/// and says where it is.
/// </summary>
[TestFixture]
public sealed partial class RepositoryMapTests
{
    private static readonly string Map = File.ReadAllText(Path.Combine(Repository.Root, "docs", "ARCHITECTURE.md"));

    private static readonly string[] Projects =
        [.. Directory.GetDirectories(Path.Combine(Repository.Root, "src")).Select(d => Path.GetFileName(d)!)];

    [Test]
    public void Every_src_project_is_on_the_map_and_every_one_it_names_exists()
    {
        var named = SrcProject().Matches(Map).Select(m => m.Groups[1].Value).ToHashSet();

        Assert.That(named.Except(Projects), Is.Empty, "named on the map, not in src/");
        Assert.That(Projects.Except(named), Is.Empty, "in src/, not on the map");
    }

    [Test]
    public void Every_code_path_the_map_names_exists()
    {
        var missing = MapPaths().Where(p => !Exists(p)).Select(p => $"{p.Section}: `{p.Path}`");

        Assert.That(missing, Is.Empty);
    }

    [Test]
    public void Every_first_level_folder_of_a_src_project_is_on_the_map()
    {
        var paths = MapPaths().ToList();
        var unnamed =
            from project in Projects
            from folder in Directory.GetDirectories(Path.Combine(Repository.Root, "src", project)).Select(d => Path.GetFileName(d)!)
            where folder is not ("bin" or "obj")
            where !Map.Contains($"{Layer(project)}/{folder}/", StringComparison.Ordinal)
                  && !paths.Any(p => p.Project == project && p.Path.StartsWith(folder + "/", StringComparison.Ordinal))
            select $"src/{project}/{folder}/";

        Assert.That(unnamed, Is.Empty);
    }

    [Test]
    public void No_file_names_a_path_outside_the_repository()
    {
        var wrong =
            from file in Repository.TextFiles()
            from match in RelativePath().Matches(File.ReadAllText(Path.Combine(Repository.Root, file)))
            let problem = PathProblem(file, match.Groups[1].Value)
            where problem is not null
            select $"{file}: {match.Groups[1].Value} {problem}";

        Assert.That(wrong, Is.Empty);
    }

    [Test]
    public void Every_invariant_a_comment_cites_is_one_of_DESIGN_md_and_points_there()
    {
        var design = File.ReadAllText(Path.Combine(Repository.Root, "docs", "DESIGN.md"));
        var invariants = design[design.IndexOf("## Invariants", StringComparison.Ordinal)..];
        invariants = invariants[..invariants.IndexOf("\n## ", StringComparison.Ordinal)];
        var defined = Invariant().Matches(invariants).Select(m => m.Groups[1].Value).ToHashSet();
        Assert.That(defined, Has.Count.GreaterThanOrEqualTo(9), "DESIGN.md's numbered invariants");

        var wrong =
            from file in Repository.TextFiles().Where(f => f.EndsWith(".cs", StringComparison.Ordinal))
            let text = File.ReadAllText(Path.Combine(Repository.Root, file))
            from match in Citation().Matches(text)
            let numbers = Number().Matches(match.Groups[2].Value).Select(n => n.Value)
            where match.Groups[1].Value != "DESIGN.md, " || numbers.Any(n => !defined.Contains(n))
            select $"{file}: '{match.Value}' (cite as 'DESIGN.md, invariant N', N one of {string.Join(", ", defined)})";

        Assert.That(wrong, Is.Empty);
    }

    /// <summary>A path the map names, with the project of the part of the map it is in.</summary>
    private sealed record MapPath(string Section, string? Project, string Path);

    /// <summary>
    /// The backticked paths of the map: tokens with a slash or ending in .cs. A "## X
    /// (`src/BlockOverlay.X`)" heading sets the project the paths under it are in. bin/ is
    /// what a build makes, not the repository.
    /// </summary>
    private static IEnumerable<MapPath> MapPaths()
    {
        string section = "(top)";
        string? project = null;
        foreach (var line in Map.Split('\n'))
        {
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                section = line;
                project = SrcProject().Match(line) is { Success: true } p ? p.Groups[1].Value : null;
                continue;
            }

            foreach (Match token in Backticked().Matches(line))
            {
                string path = token.Groups[1].Value;
                if (PathToken().IsMatch(path) && (path.Contains('/', StringComparison.Ordinal) || path.EndsWith(".cs", StringComparison.Ordinal))
                    && !path.StartsWith('/') && !path.StartsWith("bin/", StringComparison.Ordinal))
                {
                    yield return new MapPath(section, project, path);
                }
            }
        }
    }

    /// <summary>
    /// Whether a path of the map is there: from the root, from its project, or from the project
    /// its first part names (<c>Store/Quota/…</c>), with or without ".cs"; a bare file name
    /// anywhere in its project. Above the first project, any project of src/ or tests/.
    /// </summary>
    private static bool Exists(MapPath mapPath)
    {
        string[] projects = mapPath.Project is { } own
            ? [Path.Combine(Repository.Root, "src", own)]
            : [.. Directory.GetDirectories(Path.Combine(Repository.Root, "src")), .. Directory.GetDirectories(Path.Combine(Repository.Root, "tests"))];
        string path = mapPath.Path.TrimEnd('/');
        if (!mapPath.Path.Contains('/', StringComparison.Ordinal))
        {
            return projects.Any(p => Directory.EnumerateFiles(p, path, SearchOption.AllDirectories).Any());
        }

        var candidates = new List<string> { Path.Combine(Repository.Root, path) };
        candidates.AddRange(projects.Select(p => Path.Combine(p, path)));
        string first = path.Split('/')[0];
        if (Projects.FirstOrDefault(p => Layer(p) == first) is { } named && path.Length > first.Length)
        {
            candidates.Add(Path.Combine(Repository.Root, "src", named, path[(first.Length + 1)..]));
        }

        return candidates.Any(c => Directory.Exists(c) || File.Exists(c) || File.Exists(c + ".cs"));
    }

    /// <summary>
    /// Why a relative path in <paramref name="file"/> is wrong, or null: it must stay inside the
    /// repository, and (except in the C# of tests, where paths are test data) name something there.
    /// </summary>
    private static string? PathProblem(string file, string path)
    {
        string full = Path.GetFullPath(Path.Combine(Repository.Root, Path.GetDirectoryName(file) ?? "", path));
        if (full != Repository.Root && !full.StartsWith(Repository.Root + "/", StringComparison.Ordinal))
        {
            return $"is {full}, outside the repository";
        }

        bool testData = file.StartsWith("tests/", StringComparison.Ordinal) && file.EndsWith(".cs", StringComparison.Ordinal);
        return testData || Directory.Exists(full) || File.Exists(full) ? null : $"is {full}, which does not exist";
    }

    private static string Layer(string project) => project.StartsWith("BlockOverlay.", StringComparison.Ordinal) ? project["BlockOverlay.".Length..] : project;

    [GeneratedRegex(@"src/(BlockOverlay\.\w+)")]
    private static partial Regex SrcProject();

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Backticked();

    [GeneratedRegex(@"^[A-Za-z0-9_.\-/]+$")]
    private static partial Regex PathToken();

    /// <summary>A relative path going up: ../x, ../../y/z (not the middle of a path such as a/../b).</summary>
    [GeneratedRegex(@"(?<![\w./-])((?:\.\./)+[\w.@/-]*)")]
    private static partial Regex RelativePath();

    [GeneratedRegex(@"^(\d+)\. \*\*", RegexOptions.Multiline)]
    private static partial Regex Invariant();

    /// <summary>A citation of one invariant or more by number (a list joined by commas and "and"), with what comes just before.</summary>
    [GeneratedRegex(@"(DESIGN\.md, )?\b[Ii]nvariants? (\d+(?:(?:, | and )\d+)*)")]
    private static partial Regex Citation();

    [GeneratedRegex(@"\d+")]
    private static partial Regex Number();
}
