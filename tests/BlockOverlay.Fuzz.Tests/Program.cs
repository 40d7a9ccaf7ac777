using BlockOverlay.Fuzz.Tests.Targets;

namespace BlockOverlay.Fuzz.Tests;

/// <summary>
/// The harness as a program (make fuzz-coverage runs it under afl-fuzz on an instrumented copy):
/// <list type="bullet">
/// <item><c>TARGET</c>: the afl-fuzz loop over one target (stdin, persistent mode).</item>
/// <item><c>replay TARGET FILE...</c>: each file through the target, plainly: its outcome, or the bug's exception; exit 1 on a bug.</item>
/// <item><c>seed DIR</c>: writes the seed corpus as DIR/TARGET/seed-NAME.</item>
/// </list>
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args is ["seed", string dir])
        {
            foreach (var (seeded, name, bytes) in Seeds.All())
            {
                Directory.CreateDirectory(Path.Combine(dir, seeded));
                File.WriteAllBytes(Path.Combine(dir, seeded, $"seed-{name}"), bytes);
            }

            return 0;
        }

        if (args is ["replay", string replayed, .. var files] && FuzzTargets.All.TryGetValue(replayed, out var harness))
        {
            int bugs = 0;
            foreach (string file in files)
            {
                try
                {
                    Console.WriteLine($"{file}: {harness(File.ReadAllBytes(file))}");
                }
#pragma warning disable CA1031 // Whatever escapes the harness is the finding to show.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    Console.WriteLine($"{file}: BUG {e}");
                    bugs++;
                }
            }

            return bugs == 0 ? 0 : 1;
        }

        if (args is [string target] && FuzzTargets.All.TryGetValue(target, out var fuzzed))
        {
            FuzzTargets.RunUnderAfl(fuzzed);
            return 0;
        }

        Console.Error.WriteLine($"usage: TARGET | replay TARGET FILE... | seed DIR; targets: {string.Join(", ", FuzzTargets.All.Keys)}");
        return 2;
    }
}
