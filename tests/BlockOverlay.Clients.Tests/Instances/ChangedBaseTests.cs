using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Instances;

/// <summary>
/// A base image changed after an instance was made on it: that instance is not served
/// (its old upper data over new base bytes would be a disk nobody wrote), the server says
/// why, naming the instance and the base, and every other instance is served as usual.
/// </summary>
public class ChangedBaseTests
{
    [TestCase("append a byte")]
    [TestCase("overwrite the first byte")]
    [TestCase("overwrite the last byte")]
    public void The_instance_over_a_changed_base_is_not_served_and_the_others_are(string change)
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("32M");
        ws.WriteRandomFile("changing.raw", 3 << 20, seed: 41);
        var otherBase = ws.WriteRandomFile("other.raw", 1 << 20, seed: 42);
        ws.CreateInstance("victim", ws["changing.raw"]);
        ws.CreateInstance("neighbour", ws["other.raw"]);
        ws.CreateInstance("blank", null, "1M");

        using (var file = new FileStream(ws["changing.raw"], FileMode.Open, FileAccess.ReadWrite))
        {
            switch (change)
            {
                case "append a byte":
                    file.Seek(0, SeekOrigin.End);
                    file.WriteByte(0x5a);
                    break;
                case "overwrite the first byte":
                    var first = file.ReadByte();
                    file.Position = 0;
                    file.WriteByte((byte)(first ^ 0xff));
                    break;
                default:
                    file.Position = file.Length - 1;
                    var last = file.ReadByte();
                    file.Position = file.Length - 1;
                    file.WriteByte((byte)(last ^ 0xff));
                    break;
            }
        }

        using var server = StoreServer.Start(ws);

        var list = ClientTool.Nbdinfo.Run("--list", "--json", server.UnixUri(""));
        Assert.That(list.ExitCode, Is.Zero, () => $"{list}\n{server}");
        using var json = JsonDocument.Parse(list.Stdout);
        var names = json.RootElement.GetProperty("exports").EnumerateArray().Select(e => e.GetProperty("export-name").GetString()).ToList();
        Assert.That(names, Is.EquivalentTo(new[] { "neighbour", "blank" }), "the exports listed");

        var refused = server.Log.Split('\n').Where(l => l.Contains("'victim'", StringComparison.Ordinal)).ToList();
        Assert.That(refused, Has.Count.EqualTo(1), server.ToString);
        Assert.That(refused[0], Does.Contain("instance 'victim' is not served").And.Contain(ws["changing.raw"]).And.Contain("changed"), server.ToString);
        Assert.That(server.Log, Does.Not.Contain("'neighbour' is not served").And.Not.Contain("'blank' is not served"), server.ToString);

        var attach = ClientTool.Nbdinfo.Run(server.UnixUri("victim"));
        Assert.That(attach.ExitCode, Is.Not.Zero, $"a client could attach to the refused instance\n{attach}");
        Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "neighbour"), otherBase), Is.Null, "the neighbour reads its base");
        Assert.That(ExportContent.CopyOut(server, ws, "blank"), Is.EqualTo(new byte[1 << 20]), "the blank instance reads zeros");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);

        // Not served is not deleted: the instance is still in the store.
        Assert.That(ws.ListInstances().Select(r => r[0]), Is.EquivalentTo(new[] { "victim", "neighbour", "blank" }));
    }
}
