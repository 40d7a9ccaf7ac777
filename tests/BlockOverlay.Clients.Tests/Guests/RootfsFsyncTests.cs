using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// Scenario "rootfs and fsync" (Kata-style): two guests, one after the other, each booting
/// from its own instance of one base image, write and fsync files and power off. The server's
/// counters show each guest's fsyncs as flushes of its own instance only, writing its own
/// bytes. After a server restart each instance holds exactly its own guest's files, its file
/// system is clean, and the base image was never written. The same with the store in an RBD
/// image of the one-node test cluster: the guests' fsyncs are flushes of their own instances there too.
/// </summary>
public class RootfsFsyncTests
{
    /// <summary>What guest/write-files.sh writes and fsyncs: 2 MiB and 12 KiB of file data.</summary>
    private const long GuestFileBytes = (2048 + 12) * 1024;

    private static readonly string[] Instances = ["one", "two"];

    [TestCase("file")]
    [TestCase("rbd", Category = "Ceph")]
    public async Task Each_guest_reads_back_its_own_fsynced_files_after_a_server_restart(string store)
    {
        var kit = GuestKit.Current;
        await using var ceph = store == "rbd" ? await CephScope.EnterAsync() : null;
        using var ws = new StoreWorkspace(ceph?.NewImage("rootfs").ToString());
        ws.CreateStore("256M");
        foreach (var name in Instances)
        {
            ws.CreateInstance(name, kit.BaseImage);
        }

        var evidence = new Evidence();
        var reports = new Dictionary<string, GuestReport>();
        using (var server = StoreServer.Start(ws, tcp: false, InstanceCounters.ServeArguments))
        {
            evidence.Add("server", () => server.Log);
            foreach (var name in Instances)
            {
                var before = InstanceCounters.Scrape(server, Instances, evidence);
                using (var guest = Guest.BootFromExport(server.SocketPath, name, evidence, "write-files", name))
                {
                    reports[name] = guest.WaitForPowerOff();
                }

                AssertFlushedByItselfOnly(name, before, InstanceCounters.Scrape(server, Instances, evidence), evidence);
            }

            Assert.That(server.Terminate(), Is.Zero, evidence.ToString);
        }

        using (var server = StoreServer.Start(ws))
        {
            evidence.Add("restarted server", () => server.Log);
            foreach (var name in Instances)
            {
                var other = Instances.Single(n => n != name);
                var fs = ExportedFileSystem.CopyOut(server, ws, name, evidence);
                fs.AssertClean();
                foreach (var file in new[] { $"/data/{name}/big", $"/data/{name}/small", "/data/whoami" })
                {
                    Assert.That(fs.Sha256(file), Is.EqualTo(reports[name].Sha256Of(file, evidence)),
                        () => $"{file} in instance {name} is not what its guest fsynced\n{evidence}");
                }

                Assert.That(fs.ReadText("/data/whoami"), Is.EqualTo($"written by the guest of instance {name}\n"), evidence.ToString);
                Assert.That(fs.Sha256($"/data/{other}/big"), Is.Null, () => $"instance {name} holds a file of instance {other}\n{evidence}");
            }
        }

        Assert.That(StoreWorkspace.Sha256(kit.BaseImage), Is.EqualTo(kit.BaseImageSha256), "the base image was written");
    }

    /// <summary>
    /// The guest of <paramref name="name"/> flushed (its fsyncs arrive as FLUSH: virtio-blk
    /// has no FUA) and its bytes reached the store through its own instance's flushes or
    /// write-back; every other instance's flush counters stayed as they were.
    /// </summary>
    private static void AssertFlushedByItselfOnly(string name, IReadOnlyDictionary<string, InstanceCounters> before,
        IReadOnlyDictionary<string, InstanceCounters> after, Evidence evidence)
    {
        var (was, now) = (before[name], after[name]);
        Assert.That(now.Flushes, Is.GreaterThan(was.Flushes), () => $"flushes of instance {name} while its guest ran\n{evidence}");
        Assert.That(now.FlushDataBytes + now.WriteBackBytes - was.FlushDataBytes - was.WriteBackBytes, Is.AtLeast(GuestFileBytes),
            () => $"bytes instance {name} wrote to the store while its guest ran\n{evidence}");
        foreach (var other in Instances.Where(n => n != name))
        {
            Assert.That((after[other].Flushes, after[other].FlushDataBytes), Is.EqualTo((before[other].Flushes, before[other].FlushDataBytes)),
                () => $"flush counters of instance {other} while the guest of {name} ran\n{evidence}");
        }
    }
}
