using BlockOverlay.Engine.Exports;
using BlockOverlay.LibNbd;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// Requests a careful client never sends, sent with libnbd's strict checks off: each
/// gets exactly the protocol's error, and the connection keeps working afterwards.
/// </summary>
public class BadRequestTests
{
    private const int EPERM = 1, EINVAL = 22, ENOSPC = 28, ENOTSUP = 95;
    private const ulong Size = 1 << 20;

    private string _directory = null!;
    private TestServer _server = null!;
    private NbdClient _client = null!;

    [SetUp]
    public void Start()
    {
        _directory = Directory.CreateTempSubdirectory("blockoverlay-bad-").FullName;
        string image = Path.Combine(_directory, "ro.img");
        File.WriteAllBytes(image, new byte[Size]);
        _server = new TestServer(("disk", new MemoryExport((long)Size)), ("ro", FileExport.Open(image, readOnly: true)));
        _client = Connect(_server, "disk", StrictMode.None);
    }

    [TearDown]
    public async Task Stop()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    private static int ErrnoOf(TestDelegate action)
    {
        var error = Assert.Throws<NbdException>(action);
        return error!.Errno;
    }

    private static void AssertStillWorks(NbdClient client)
    {
        client.Pwrite([0x5A], 7);
        Assert.That(client.Read(1, 7), Is.EqualTo(new byte[] { 0x5A }), "the connection still works");
    }

    [Test]
    public void Out_of_range_requests_get_enospc_for_writes_and_einval_for_the_rest()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ErrnoOf(() => _client.Pwrite(new byte[2], Size - 1)), Is.EqualTo(ENOSPC), "write");
            Assert.That(ErrnoOf(() => _client.Zero(4096, Size)), Is.EqualTo(ENOSPC), "write zeroes");
            Assert.That(ErrnoOf(() => _client.Read(2, Size - 1)), Is.EqualTo(EINVAL), "read");
            Assert.That(ErrnoOf(() => _client.Trim(1, Size)), Is.EqualTo(EINVAL), "trim");
            Assert.That(ErrnoOf(() => _client.Cache(1, Size)), Is.EqualTo(EINVAL), "cache");
            Assert.That(ErrnoOf(() => _client.BlockStatus(2, Size - 1)), Is.EqualTo(EINVAL), "block status");
        });
        AssertStillWorks(_client);
    }

    [Test]
    public void Unknown_flags_and_flags_on_the_wrong_command_get_einval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ErrnoOf(() => _client.Pwrite([1], 0, (CommandFlags)0x4000)), Is.EqualTo(EINVAL), "unknown flag");
            Assert.That(ErrnoOf(() => _client.Pwrite([1], 0, CommandFlags.NoHole)), Is.EqualTo(EINVAL), "NO_HOLE on WRITE");
            Assert.That(ErrnoOf(() => _client.Trim(1, 0, CommandFlags.ReqOne)), Is.EqualTo(EINVAL), "REQ_ONE on TRIM");
            Assert.That(ErrnoOf(() => _client.Read(1, 0, CommandFlags.FastZero)), Is.EqualTo(EINVAL), "FAST_ZERO on READ");
        });
        AssertStillWorks(_client);
    }

    [Test]
    public void Zero_length_requests_get_einval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(ErrnoOf(() => _client.Pwrite([], 0)), Is.EqualTo(EINVAL));
            Assert.That(ErrnoOf(() => _client.Read(0, 0)), Is.EqualTo(EINVAL));
            Assert.That(ErrnoOf(() => _client.Trim(0, 0)), Is.EqualTo(EINVAL));
        });
        AssertStillWorks(_client);
    }

    [Test]
    public void Reads_and_writes_over_the_maximum_payload_get_einval()
    {
        // The disk is 1 MiB, so these ranges are out of bounds too: the payload limit comes first.
        Assert.That(ErrnoOf(() => _client.Read((32 << 20) + 1, 0)), Is.EqualTo(EINVAL));
        Assert.That(ErrnoOf(() => _client.Pwrite(new byte[(32 << 20) + 1], 0)), Is.EqualTo(EINVAL));
        AssertStillWorks(_client);
    }

    [Test]
    public void Write_type_commands_on_a_read_only_export_get_eperm()
    {
        using var readOnly = Connect(_server, "ro", StrictMode.None);
        Assert.That(readOnly.IsReadOnly(), Is.True);
        Assert.Multiple(() =>
        {
            Assert.That(ErrnoOf(() => readOnly.Pwrite([1], 0)), Is.EqualTo(EPERM));
            Assert.That(ErrnoOf(() => readOnly.Trim(1, 0)), Is.EqualTo(EPERM));
            Assert.That(ErrnoOf(() => readOnly.Zero(1, 0)), Is.EqualTo(EPERM));
        });
        Assert.That(readOnly.Read(4, 0), Is.EqualTo(new byte[4]), "reads still work");
    }

    [Test]
    public async Task A_fast_zero_that_cannot_be_fast_gets_enotsup_and_changes_nothing()
    {
        // tmpfs punches holes but has no ZERO_RANGE: a NO_HOLE zero there can only be slow.
        const string shm = "/dev/shm";
        if (!Directory.Exists(shm))
        {
            Assert.Ignore("needs /dev/shm (tmpfs) for an export whose NO_HOLE zeroing is slow");
        }

        string image = Path.Combine(shm, $"blockoverlay-fastzero-{Guid.NewGuid():N}.img");
        await File.WriteAllBytesAsync(image, Pattern(65536, 5));
        try
        {
            await using var server = new TestServer(("tmpfs", FileExport.Open(image)));
            using var client = Connect(server, "tmpfs", StrictMode.None);
            Assert.That(client.CanFastZero(), Is.True);
            Assert.That(ErrnoOf(() => client.Zero(4096, 0, CommandFlags.FastZero | CommandFlags.NoHole)), Is.EqualTo(ENOTSUP));
            Assert.That(client.Read(4096, 0), Is.EqualTo(Pattern(65536, 5).AsSpan(0, 4096).ToArray()), "nothing was zeroed");
            client.Zero(4096, 0, CommandFlags.FastZero);
            Assert.That(client.Read(4096, 0), Is.EqualTo(new byte[4096]), "a fast zero that can punch a hole works");
        }
        finally
        {
            File.Delete(image);
        }
    }

    [Test]
    public void Block_status_without_a_meta_context_gets_einval()
    {
        using var plain = new NbdClient();
        plain.SetStrictMode(StrictMode.None);
        plain.ConnectUri(_server.Uri("disk"));
        Assert.That(ErrnoOf(() => plain.BlockStatus(4096, 0)), Is.EqualTo(EINVAL));
        AssertStillWorks(plain);
    }
}
