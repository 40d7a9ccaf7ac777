using BlockOverlay.Fuzz.Tests.Targets;

namespace BlockOverlay.Fuzz.Tests;

/// <summary>
/// The committed corpus (Corpus/TARGET/: the seeds, and every input a fuzzing run found
/// interesting or crashing that was kept) through each harness's entry function, plainly,
/// without afl-fuzz: a regression on a known input fails here.
/// </summary>
public class CorpusReplayTests
{
    private static string CorpusDir => Path.Combine(AppContext.BaseDirectory, "Corpus");

    public static IEnumerable<string> Targets => FuzzTargets.All.Keys;

    [TestCaseSource(nameof(Targets))]
    public void Every_corpus_input_ends_accepted_or_refused_the_documented_way(string target)
    {
        var files = Directory.GetFiles(Path.Combine(CorpusDir, target));
        Assert.That(files, Is.Not.Empty, $"no corpus for {target}");
        foreach (string file in files)
        {
            Assert.DoesNotThrow(() => FuzzTargets.All[target](File.ReadAllBytes(file)), Path.GetFileName(file));
        }
    }

    [TestCaseSource(nameof(Targets))]
    public void The_seeds_are_valid_inputs_their_harness_accepts(string target)
    {
        var seeds = Directory.GetFiles(Path.Combine(CorpusDir, target), "seed-*");
        Assert.That(seeds, Is.Not.Empty, $"no seed for {target}");
        foreach (string seed in seeds)
        {
            Assert.That(FuzzTargets.All[target](File.ReadAllBytes(seed)), Is.EqualTo(Outcome.Accepted), Path.GetFileName(seed));
        }
    }

    [Test]
    public void The_committed_seeds_are_what_the_encoders_write_today()
    {
        foreach (var (target, name, bytes) in Seeds.All())
        {
            string path = Path.Combine(CorpusDir, target, $"seed-{name}");
            Assert.That(File.Exists(path) ? File.ReadAllBytes(path) : null, Is.EqualTo(bytes),
                $"{target}/seed-{name}: run `dotnet BlockOverlay.Fuzz.Tests.dll seed tests/BlockOverlay.Fuzz.Tests/Corpus` and commit");
        }
    }
}
