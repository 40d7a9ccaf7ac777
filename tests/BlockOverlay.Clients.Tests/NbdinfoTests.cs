using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests;

/// <summary>What libnbd's nbdinfo sees of the server: flags, sizes, exports, allocation map.</summary>
public class NbdinfoTests
{
    private static readonly string[] EveryWriteFeature =
        ["can_flush", "can_fua", "can_trim", "can_zero", "can_fast_zero", "can_cache", "can_df", "can_multi_conn"];

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

    private static JsonDocument Info(ServerProcess server, params string[] args)
    {
        var result = ClientTool.Nbdinfo.Run(args);
        Assert.That(result.ExitCode, Is.Zero, $"{result}\n{server}");
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
}
