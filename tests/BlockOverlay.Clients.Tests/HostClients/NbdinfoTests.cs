using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;
using static BlockOverlay.Clients.Tests.HostClients.PartlyWrittenInstance;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// What libnbd's nbdinfo sees of the server: of plain exports (memory, files), the flags,
/// sizes, export list and allocation map; of the instances of a store, the export list with
/// sizes and descriptions, an instance's flags, block sizes and meta contexts, and both its
/// maps extent by extent (base:allocation, and blockoverlay:layer: which bytes are the
/// instance's own, the base's, or zeros), before and after qemu-io changed it, and again
/// after kill -9 and a restart.
/// </summary>
public class NbdinfoTests
{
    private static readonly string[] EveryWriteFeature =
        ["can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache", "can_df", "can_multi_conn"];

    // blockoverlay:layer
    private const int Zeros = 0;
    private const int Upper = 1;
    private const int Base = 2;

    // base:allocation
    private const int Data = 0;
    private const int HoleZero = 3;

    private static readonly string[] InstanceContexts = ["base:allocation", "blockoverlay:layer"];

    private static readonly IReadOnlyList<Extent> PristineAllocation =
        ExactMap.Runs((1 * M, Data), (2 * M, HoleZero), (BaseSize, Data), (Size, HoleZero));

    private static readonly IReadOnlyList<Extent> PristineLayers = ExactMap.Runs((BaseSize, Base), (Size, Zeros));

    /// <summary>After <see cref="PartlyWrittenInstance.Edits"/>: upper data and base data are both data.</summary>
    private static readonly IReadOnlyList<Extent> EditedAllocation = ExactMap.Runs(
        (96 * K, Data),             // base, then the first half of the 0x11 write
        (128 * K, HoleZero),        // its trimmed half
        (256 * K, Data),
        (384 * K, HoleZero),        // zeroed, may unmap
        (1 * M, Data),
        (1088 * K, HoleZero),       // the base's hole ...
        (1120 * K, Data),           // ... with the 0x22 write in it
        (2 * M, HoleZero),
        (BaseSize, Data),           // base data, with the NO_HOLE zeroes at 2112K stored as data
        (5 * M, HoleZero),          // past the base
        ((5 * M) + (8 * K), Data),  // 0x33
        (7 * M, HoleZero),
        ((7 * M) + (4 * K), Data),  // the block holding the unaligned 0x44 write
        (Size, HoleZero));

    private static readonly IReadOnlyList<Extent> EditedLayers = ExactMap.Runs(
        (64 * K, Base),
        (96 * K, Upper),
        (128 * K, Zeros),           // trimmed: zeros, the base must not show through
        (256 * K, Base),
        (384 * K, Zeros),
        (1088 * K, Base),           // the base's hole is still the base's
        (1120 * K, Upper),
        (2112 * K, Base),
        (2128 * K, Upper),          // NO_HOLE zeroes are upper blocks
        (BaseSize, Base),           // to the base's last byte, mid-block
        (5 * M, Zeros),
        ((5 * M) + (8 * K), Upper),
        (7 * M, Zeros),
        ((7 * M) + (4 * K), Upper),
        (Size, Zeros));

    [TestCase("unix")]
    [TestCase("tcp")]
    public void Json_shows_every_flag_and_the_block_sizes(string transport)
    {
        using var server = ServerProcess.StartWithTcp("disk=memory:64M");
        var uri = transport == "tcp" ? server.TcpUri("disk") : server.UnixUri("disk");

        var export = SingleExport(Info(server, "--json", uri));

        Assert.Multiple(() =>
        {
            Assert.That(export.GetProperty("export-name").GetString(), Is.EqualTo("disk"));
            Assert.That(export.GetProperty("export-size").GetInt64(), Is.EqualTo(64L << 20));
            Assert.That(export.GetProperty("is_read_only").GetBoolean(), Is.False, "is_read_only");
            foreach (var feature in EveryWriteFeature)
            {
                Assert.That(export.GetProperty(feature).GetBoolean(), Is.True, feature);
            }

            Assert.That(export.GetProperty("block_size_minimum").GetInt64(), Is.EqualTo(1));
            Assert.That(export.GetProperty("block_size_preferred").GetInt64(), Is.EqualTo(4096));
            Assert.That(export.GetProperty("block_size_maximum").GetInt64(), Is.EqualTo(32L << 20));
            Assert.That(export.GetProperty("contexts").EnumerateArray().Select(c => c.GetString()), Does.Contain("base:allocation"));
        });
    }

    [Test]
    public void Json_shows_a_read_only_file_export_as_read_only_with_the_file_size()
    {
        using var scratch = new ScratchDirectory();
        var image = scratch.CreateEmptyImage("base.img", 3 << 20);
        using var server = ServerProcess.Start($"base=file:{image}:ro");

        var export = SingleExport(Info(server, "--json", server.UnixUri("base")));

        Assert.Multiple(() =>
        {
            Assert.That(export.GetProperty("is_read_only").GetBoolean(), Is.True, "is_read_only");
            Assert.That(export.GetProperty("export-size").GetInt64(), Is.EqualTo(3L << 20));
        });
    }

    [Test]
    public void List_shows_every_export_with_its_size()
    {
        using var scratch = new ScratchDirectory();
        var roImage = scratch.CreateEmptyImage("ro.img", 1 << 20);
        var rwImage = scratch.CreateEmptyImage("rw.img", 2 << 20);
        using var server = ServerProcess.Start("scratch=memory:5M", $"golden=file:{roImage}:ro", $"work=file:{rwImage}");

        var exports = Info(server, "--list", "--json", server.UnixUri(""))
            .RootElement.GetProperty("exports").EnumerateArray()
            .ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e);

        Assert.That(exports.Keys, Is.EquivalentTo(new[] { "scratch", "golden", "work" }));
        Assert.Multiple(() =>
        {
            Assert.That(exports["scratch"].GetProperty("export-size").GetInt64(), Is.EqualTo(5L << 20));
            Assert.That(exports["golden"].GetProperty("export-size").GetInt64(), Is.EqualTo(1L << 20));
            Assert.That(exports["golden"].GetProperty("is_read_only").GetBoolean(), Is.True);
            Assert.That(exports["work"].GetProperty("export-size").GetInt64(), Is.EqualTo(2L << 20));
            Assert.That(exports["work"].GetProperty("is_read_only").GetBoolean(), Is.False);
        });
    }

    [Test]
    public void Map_of_a_memory_export_shows_a_written_block_as_data_and_the_rest_as_hole_zero()
    {
        const long Size = 16 << 20;
        using var server = ServerProcess.Start($"disk=memory:{Size}");
        var uri = server.UnixUri("disk");

        var before = Map(server, uri);
        Assert.That(before, Is.EqualTo(new[] { (0L, Size, 3L) }), "a fresh export is one hole");

        NbdshScript.Run(server, """
            h = connect("disk")
            h.pwrite(pattern(0x5c, 4096), 0)
            """);
        var after = Map(server, uri);

        Assert.That(after, Has.Count.GreaterThanOrEqualTo(2), "data then hole");
        var (dataOffset, dataLength, dataType) = after[0];
        Assert.Multiple(() =>
        {
            Assert.That(dataOffset, Is.Zero);
            Assert.That(dataType, Is.Zero, "the written block is data");
            Assert.That(dataLength, Is.InRange(4096, 1 << 20), "the data extent covers the block and not much more");
            Assert.That(after.Skip(1).Select(e => e.Type), Is.All.EqualTo(3L), "everything after is hole,zero");
            Assert.That(after.Sum(e => e.Length), Is.EqualTo(Size), "the map covers the whole export");
        });
    }

    [Test]
    public void List_and_json_show_each_instance_with_its_size_flags_block_sizes_and_both_contexts()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        ws.WriteRandomFile("base.raw", 3 << 20, seed: 71);
        ws.CreateInstance("vm", ws["base.raw"], "8M");
        ws.CreateInstance("blank", null, "4M");
        using var server = StoreServer.Start(ws, tcp: true);

        using var list = Info(server, "--list", "--json", server.UnixUri(""));
        var exports = list.RootElement.GetProperty("exports").EnumerateArray().ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e);
        Assert.That(exports.Keys, Is.EquivalentTo(new[] { "vm", "blank" }));
        Assert.Multiple(() =>
        {
            Assert.That(exports["vm"].GetProperty("export-size").GetInt64(), Is.EqualTo(8L << 20));
            Assert.That(exports["vm"].GetProperty("description").GetString(), Is.EqualTo($"instance of {ws["base.raw"]}"));
            Assert.That(exports["blank"].GetProperty("export-size").GetInt64(), Is.EqualTo(4L << 20));
            Assert.That(exports["blank"].GetProperty("description").GetString(), Is.EqualTo("instance over zeros"));
            foreach (var (name, export) in exports)
            {
                Assert.That(Contexts(export), Is.EquivalentTo(InstanceContexts), $"{name}: meta contexts");
            }
        });

        using var info = Info(server, "--json", server.TcpUri("vm"));
        var vm = info.RootElement.GetProperty("exports").EnumerateArray().Single();
        Assert.Multiple(() =>
        {
            Assert.That(vm.GetProperty("is_read_only").GetBoolean(), Is.False, "is_read_only");
            foreach (var feature in EveryWriteFeature)
            {
                Assert.That(vm.GetProperty(feature).GetBoolean(), Is.True, feature);
            }

            Assert.That(vm.GetProperty("block_size_minimum").GetInt64(), Is.EqualTo(1));
            Assert.That(vm.GetProperty("block_size_preferred").GetInt64(), Is.EqualTo(4096));
            Assert.That(vm.GetProperty("block_size_maximum").GetInt64(), Is.EqualTo(32L << 20));
            Assert.That(Contexts(vm), Is.EquivalentTo(InstanceContexts));
        });
    }

    [Test]
    public void Only_instances_offer_the_layer_context()
    {
        using var server = ServerProcess.Start("plain=memory:1M");

        var info = ClientTool.Nbdinfo.Run("--json", server.UnixUri("plain"));
        Assert.That(info.ExitCode, Is.Zero, () => $"{info}\n{server}");
        using var json = JsonDocument.Parse(info.Stdout);
        Assert.That(Contexts(json.RootElement.GetProperty("exports")[0]), Is.EqualTo(new[] { "base:allocation" }));

        var map = ClientTool.Nbdinfo.Run("--map=blockoverlay:layer", server.UnixUri("plain"));
        Assert.That(map.ExitCode, Is.Not.Zero, () => $"a memory export answered the layer map\n{map}");
        Assert.That(map.Stderr, Does.Contain("does not support metadata context \"blockoverlay:layer\""), map.ToString);
    }

    [Test]
    public void Maps_show_upper_base_and_zeros_exactly_where_qemu_io_changed_the_instance_and_kill_9_keeps_them()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var baseImage = CreateBase(ws, "base.raw", seed: 72);
        ws.CreateInstance("vm", ws["base.raw"], "8M");

        byte[] model;
        using (var server = StoreServer.Start(ws))
        {
            AssertMaps(server, PristineAllocation, PristineLayers, "before any write");
            model = Edit(server, "vm", baseImage);
            AssertMaps(server, EditedAllocation, EditedLayers, "after qemu-io");
            server.Kill();
        }

        using (var server = StoreServer.Start(ws))
        {
            AssertMaps(server, EditedAllocation, EditedLayers, "after kill -9 and a restart");
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "vm"), model), Is.Null, "the bytes after the restart");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }
    }

    /// <summary>nbdinfo's JSON; <paramref name="server"/> (its log) is named if nbdinfo fails.</summary>
    private static JsonDocument Info(object server, params string[] args)
    {
        var result = ClientTool.Nbdinfo.Run(args);
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        return JsonDocument.Parse(result.Stdout);
    }

    private static JsonElement SingleExport(JsonDocument info)
    {
        var exports = info.RootElement.GetProperty("exports").EnumerateArray().ToList();
        Assert.That(exports, Has.Count.EqualTo(1));
        return exports[0];
    }

    private static List<(long Offset, long Length, long Type)> Map(ServerProcess server, string uri) =>
        Info(server, "--map", "--json", uri).RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("type").GetInt64()))
            .ToList();

    private static void AssertMaps(StoreServer server, IReadOnlyList<Extent> allocation, IReadOnlyList<Extent> layers, string when)
    {
        var actualAllocation = ExportContent.Map(server, "vm");
        var actualLayers = ExportContent.Map(server, "vm", "blockoverlay:layer");
        Assert.Multiple(() =>
        {
            ExactMap.AssertEqual(actualAllocation, allocation, $"base:allocation {when}");
            ExactMap.AssertEqual(actualLayers, layers, $"blockoverlay:layer {when}");
        });
    }

    private static List<string?> Contexts(JsonElement export) =>
        export.GetProperty("contexts").EnumerateArray().Select(c => c.GetString()).ToList();
}
