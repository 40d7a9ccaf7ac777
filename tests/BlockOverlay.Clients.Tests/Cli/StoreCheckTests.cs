using System.Buffers.Binary;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// <c>blockoverlay store check</c> as an operator runs it: exit 0 and "clean" for a sound store
/// (the file untouched), exit 3 with each problem class counted when something is wrong, the
/// same report as JSON with <c>--json</c>, and <c>--repair</c> fixing a damaged superblock copy
/// but leaving a damaged checkpoint untouched, saying why. (Refusals, such as a store a server
/// holds, are in <see cref="CliErrorTests"/>.)
/// </summary>
[NonParallelizable]
public class StoreCheckTests
{
    private const int Block = StoreWorkspace.Block;
    private StoreWorkspace _ws = null!;

    [SetUp]
    public void CreateStore()
    {
        _ws = new StoreWorkspace();
        _ws.CreateStore("32M");
        _ws.CreateInstance("web", null, "4M");
    }

    [TearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    [Test]
    public void A_sound_store_checks_clean_with_exit_0_in_lines_and_in_json_and_is_not_written()
    {
        var hash = StoreWorkspace.Sha256(_ws.StorePath);

        var lines = StoreWorkspace.Cli("store", "check", _ws.StorePath);
        var json = StoreWorkspace.Cli("store", "check", _ws.StorePath, "--json");

        Assert.Multiple(() =>
        {
            Assert.That(lines.ExitCode, Is.Zero, lines.ToString);
            Assert.That(lines.Stdout, Does.StartWith($"store {_ws.StorePath}: clean\n").And.Contain("checked:\n  superblock:")
                .And.Contain("\n  checkpoint: ").And.Contain("\n  maps: 1 instance, "), lines.ToString);
            Assert.That(lines.Stderr, Is.Empty);
            Assert.That(json.ExitCode, Is.Zero, json.ToString);
        });
        using var report = JsonDocument.Parse(json.Stdout);
        var root = report.RootElement;
        Assert.Multiple(() =>
        {
            Assert.That(root.GetProperty("store").GetString(), Is.EqualTo(_ws.StorePath));
            Assert.That(root.GetProperty("clean").GetBoolean(), Is.True);
            Assert.That(root.GetProperty("problems").GetArrayLength(), Is.Zero);
            Assert.That(root.GetProperty("notes").GetArrayLength(), Is.GreaterThanOrEqualTo(4));
            Assert.That(root.GetProperty("repair").ValueKind, Is.EqualTo(JsonValueKind.Null));
            Assert.That(StoreWorkspace.Sha256(_ws.StorePath), Is.EqualTo(hash), "the check wrote to the store");
        });
    }

    [Test]
    public void A_damaged_superblock_copy_exits_3_naming_its_class_and_repair_rewrites_it()
    {
        Flip(Block + 77); // copy B's device size

        var lines = StoreWorkspace.Cli("store", "check", _ws.StorePath);
        var json = StoreWorkspace.Cli("store", "check", _ws.StorePath, "--json");

        Assert.Multiple(() =>
        {
            Assert.That(lines.ExitCode, Is.EqualTo(3), lines.ToString);
            Assert.That(lines.Stdout, Does.StartWith($"store {_ws.StorePath}: 1 problem found\n  damaged superblock copy: 1\n")
                .And.Contain("copy B (block 1)").And.Contain("--repair: rewritten from the valid copy"), lines.ToString);
            Assert.That(json.ExitCode, Is.EqualTo(3), json.ToString);
        });
        using (var report = JsonDocument.Parse(json.Stdout))
        {
            var problem = report.RootElement.GetProperty("problems").EnumerateArray().Single();
            Assert.That(report.RootElement.GetProperty("clean").GetBoolean(), Is.False);
            Assert.That(problem.GetProperty("class").GetString(), Is.EqualTo("damaged-superblock-copy"));
            Assert.That(problem.GetProperty("count").GetInt64(), Is.EqualTo(1));
            Assert.That(problem.GetProperty("repairable").GetBoolean(), Is.True);
        }

        var repair = StoreWorkspace.Cli("store", "check", _ws.StorePath, "--repair");

        Assert.That(repair.ExitCode, Is.Zero, repair.ToString);
        Assert.That(repair.Stdout, Does.Contain("repaired:\n  superblock copy B (block 1): rewritten from copy A").And.Contain("after the repair: clean"),
            repair.ToString);
        Assert.That(StoreWorkspace.Cli("store", "check", _ws.StorePath).ExitCode, Is.Zero, "checked again after the repair");
    }

    [Test]
    public void Repair_leaves_a_damaged_checkpoint_untouched_saying_why_and_exits_3()
    {
        Flip((CheckpointStart() * Block) + 20);
        var hash = StoreWorkspace.Sha256(_ws.StorePath);

        var result = StoreWorkspace.Cli("store", "check", _ws.StorePath, "--repair", "--json");

        Assert.That(result.ExitCode, Is.EqualTo(3), result.ToString);
        using var report = JsonDocument.Parse(result.Stdout);
        var repair = report.RootElement.GetProperty("repair");
        Assert.Multiple(() =>
        {
            Assert.That(repair.GetProperty("done").GetArrayLength(), Is.Zero);
            Assert.That(repair.GetProperty("refused").EnumerateArray().Single().GetString(), Does.StartWith("damaged checkpoint (1): not touched: "));
            Assert.That(repair.GetProperty("remaining").EnumerateArray().Single().GetProperty("class").GetString(), Is.EqualTo("damaged-checkpoint"));
            Assert.That(StoreWorkspace.Sha256(_ws.StorePath), Is.EqualTo(hash), "the repair wrote to the store");
        });
    }

    private void Flip(long offset)
    {
        using var file = File.Open(_ws.StorePath, FileMode.Open, FileAccess.ReadWrite);
        var one = new byte[1];
        file.Position = offset;
        file.ReadExactly(one);
        one[0] ^= 0x5A;
        file.Position = offset;
        file.Write(one);
    }

    /// <summary>The checkpoint's block as the newer superblock copy names it (docs/FORMAT.md: Generation at byte 56, CheckpointStart at 104).</summary>
    private long CheckpointStart()
    {
        using var file = File.OpenRead(_ws.StorePath);
        var copies = new byte[2 * Block];
        file.ReadExactly(copies);
        var newest = BinaryPrimitives.ReadUInt64LittleEndian(copies.AsSpan(56)) > BinaryPrimitives.ReadUInt64LittleEndian(copies.AsSpan(Block + 56))
            ? copies.AsSpan(0, Block)
            : copies.AsSpan(Block, Block);
        long start = BinaryPrimitives.ReadInt64LittleEndian(newest[104..]);
        Assert.That(start, Is.Positive, "precondition: the store has a checkpoint");
        return start;
    }
}
