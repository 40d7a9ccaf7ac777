using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// qemu-img on instances: converted out of a partly written instance to raw and to qcow2
/// (qcow2 leaves unallocated what the instance's map calls zero, so a wrong map loses
/// data), each compared with the expected image; the qcow2 converted into a new instance
/// over another base, which qemu-img's closing flush makes survive kill -9.
/// </summary>
public class InstanceQemuImgTests
{
    [Test]
    public void Convert_out_to_raw_and_qcow2_and_back_into_a_new_instance_compares_identical_after_kill_9()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var sourceBase = PartlyWrittenInstance.CreateBase(ws, "source-base.raw", seed: 91);
        ws.WriteRandomFile("other-base.raw", (int)PartlyWrittenInstance.Size, seed: 92);
        ws.CreateInstance("source", ws["source-base.raw"], "8M");
        ws.CreateInstance("copy", ws["other-base.raw"]);
        var expected = ws["expected.raw"];

        using (var server = StoreServer.Start(ws, tcp: true))
        {
            File.WriteAllBytes(expected, PartlyWrittenInstance.Edit(server, "source", sourceBase));
            AssertIdentical(server, "-f", "raw", "-F", "raw", expected, server.UnixUri("source"));

            QemuImg(server, "convert", "-f", "raw", "-O", "raw", server.TcpUri("source"), ws["out.raw"]);
            Assert.That(ScratchDirectory.FirstDifference(ws["out.raw"], expected), Is.Null, "first byte of the raw copy that differs");

            QemuImg(server, "convert", "-f", "raw", "-O", "qcow2", server.UnixUri("source"), ws["out.qcow2"]);
            AssertIdentical(server, "-f", "qcow2", "-F", "raw", ws["out.qcow2"], expected);

            QemuImg(server, "convert", "-n", "-f", "qcow2", "-O", "raw", ws["out.qcow2"], server.UnixUri("copy"));
            server.Kill();
        }

        using (var server = StoreServer.Start(ws, tcp: true))
        {
            AssertIdentical(server, "-f", "raw", "-F", "raw", expected, server.TcpUri("copy"));
            var againstBase = ClientTool.QemuImg.Run("compare", "-f", "raw", "-F", "raw", ws["other-base.raw"], server.UnixUri("copy"));
            Assert.That(againstBase.ExitCode, Is.EqualTo(1), () => $"1 means differ: the new instance's own base must not show through\n{againstBase}");
            Assert.That(server.Terminate(), Is.Zero, server.ToString);
        }
    }

    private static void AssertIdentical(StoreServer server, params string[] args) =>
        Assert.That(QemuImg(server, ["compare", .. args]).Stdout, Does.Contain("Images are identical"));

    private static ToolResult QemuImg(StoreServer server, params string[] args)
    {
        var result = ClientTool.QemuImg.Run(args, TimeSpan.FromSeconds(30));
        Assert.That(result.ExitCode, Is.Zero, () => $"{result}\n{server}");
        return result;
    }
}
