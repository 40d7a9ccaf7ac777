using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// A whole instance round trip with nbdcopy (several connections, many requests in flight,
/// holes skipped or zeroed): out of an instance into a raw file, and from that file into a
/// new instance over a different base, whose every byte must then be the copy's and none
/// its own base's; <c>--flush</c> makes that copy survive kill -9.
/// </summary>
public class InstanceNbdcopyTests
{
    [Test]
    public void An_instance_copied_to_a_file_and_into_a_new_instance_over_another_base_is_identical_after_kill_9()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var sourceBase = PartlyWrittenInstance.CreateBase(ws, "source-base.raw", seed: 81);
        ws.WriteRandomFile("other-base.raw", (int)PartlyWrittenInstance.Size, seed: 82);
        var hashes = new[] { StoreWorkspace.Sha256(ws["source-base.raw"]), StoreWorkspace.Sha256(ws["other-base.raw"]) };
        ws.CreateInstance("source", ws["source-base.raw"], "8M");
        ws.CreateInstance("copy", ws["other-base.raw"]);
        var file = ws["source.raw"];

        byte[] model;
        using (var server = StoreServer.Start(ws))
        {
            model = PartlyWrittenInstance.Edit(server, "source", sourceBase);

            Nbdcopy(server, server.UnixUri("source"), file);
            Assert.That(ExportContent.FirstDifference(File.ReadAllBytes(file), model), Is.Null, "the file copied out of the instance");

            Nbdcopy(server, "--flush", file, server.UnixUri("copy"));
            var layers = ExportContent.Map(server, "copy", "blockoverlay:layer");
            Assert.That(ExportContent.TypesOver(layers, 0, PartlyWrittenInstance.Size), Does.Not.Contain(2),
                $"the new instance's own base shows through the copy: {ExportContent.Describe(layers)}");
            server.Kill();
        }

        using (var server = StoreServer.Start(ws))
        {
            Assert.Multiple(() =>
            {
                Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "copy"), model), Is.Null, "the new instance after kill -9");
                Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "source"), model), Is.Null, "the source instance after kill -9");
            });
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }

        Assert.That(new[] { StoreWorkspace.Sha256(ws["source-base.raw"]), StoreWorkspace.Sha256(ws["other-base.raw"]) }, Is.EqualTo(hashes),
            "a base image was written");
    }

    private static void Nbdcopy(StoreServer server, params string[] args)
    {
        var result = ClientTool.Nbdcopy.Run(args, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
    }
}
