using System.Diagnostics;

namespace BlockOverlay.LibNbd.Tests;

/// <summary>Strict mode decides whether libnbd refuses a bad request itself or sends it.
/// nbdkit logs every request it rejects on stderr, so the tests can tell the two apart.</summary>
[TestFixture]
public sealed class StrictModeTests
{
    private const ulong DiskSize = 1 << 20;
    private NbdkitServer server = null!;

    [OneTimeSetUp]
    public void StartServer() => server = NbdkitServer.StartUnix("memory", "1M");

    [OneTimeTearDown]
    public void StopServer() => server?.Dispose();

    [Test]
    public void Default_strict_mode_has_every_flag_libnbd_1_14_knows()
    {
        using var client = new NbdClient();

        Assert.That(client.GetStrictMode(), Is.EqualTo(
            StrictMode.Commands | StrictMode.Flags | StrictMode.Bounds | StrictMode.ZeroSize | StrictMode.Align));
    }

    [Test]
    public void Out_of_range_pread_without_strict_mode_reaches_the_server_and_fails_with_EINVAL()
    {
        using var client = Connect();
        client.SetStrictMode(StrictMode.None);

        var error = Assert.Throws<NbdException>(() => client.Pread(new byte[512], DiskSize + 4096));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.EINVAL));
            Assert.That(WaitForServerLog($"offset={DiskSize + 4096} count=512"), Is.True, server.Stderr);
        });
    }

    [Test]
    public void Handle_still_works_after_the_server_rejected_a_request()
    {
        using var client = Connect();
        client.SetStrictMode(StrictMode.None);
        byte[] written = [1, 2, 3, 4, 5, 6, 7, 8];
        var read = new byte[written.Length];

        Assert.Throws<NbdException>(() => client.Pread(new byte[512], DiskSize - 256));
        client.Pwrite(written, 4096);
        client.Pread(read, 4096);

        Assert.Multiple(() =>
        {
            Assert.That(WaitForServerLog($"offset={DiskSize - 256} count=512"), Is.True, server.Stderr);
            Assert.That(read, Is.EqualTo(written));
        });
    }

    [Test]
    public void Out_of_range_pread_in_strict_mode_is_refused_by_libnbd_without_traffic()
    {
        using var client = Connect();
        const ulong offset = DiskSize + 8192;

        var error = Assert.Throws<NbdException>(() => client.Pread(new byte[512], offset));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.Not.Zero);
            Assert.That(server.Stderr, Does.Not.Contain($"offset={offset} "));
        });
    }

    [Test]
    public void Zero_length_pread_is_sent_once_ZeroSize_is_cleared()
    {
        using var client = Connect();
        client.SetStrictMode(client.GetStrictMode() & ~StrictMode.ZeroSize);

        var error = Assert.Throws<NbdException>(() => client.Pread([], 12288));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.EINVAL));
            Assert.That(WaitForServerLog("offset=12288 count=0"), Is.True, server.Stderr);
        });
    }

    [Test]
    public void Unknown_command_flag_reaches_the_server_once_Flags_is_cleared()
    {
        using var client = Connect();
        client.SetStrictMode(client.GetStrictMode() & ~StrictMode.Flags);

        var error = Assert.Throws<NbdException>(() => client.Pread(new byte[512], 16384, (CommandFlags)0x8000));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.EINVAL));
            Assert.That(WaitForServerLog("unknown flag (0x8000)"), Is.True, server.Stderr);
        });
    }

    private NbdClient Connect()
    {
        var client = new NbdClient();
        client.ConnectUnix(server.SocketPath);
        return client;
    }

    /// <summary>nbdkit writes its log line before it replies, but the line travels through a
    /// pipe and a thread-pool callback to us; on a loaded machine that can take a while.</summary>
    private bool WaitForServerLog(string text)
    {
        var deadline = Stopwatch.StartNew();
        while (!server.Stderr.Contains(text, StringComparison.Ordinal))
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                return false;
            }

            Thread.Sleep(10);
        }

        return true;
    }
}
