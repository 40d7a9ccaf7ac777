using System.Diagnostics;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.LibNbd;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging.Abstractions;
using static BlockOverlay.Nbd.Tests.Server.Clients;
using MetaContexts = BlockOverlay.LibNbd.MetaContexts;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// The server's counters after a known sequence of requests from real clients: every
/// command, a refused request of each kind and an export failure of each kind, each
/// counted exactly once and in the right place.
/// </summary>
public class ServerCountersTests
{
    private const int EINVAL = 22, ENOSPC = 28, EIO = 5;
    private const ulong Size = 1 << 20;

    private string _directory = null!;
    private ExportCatalog _catalog = null!;
    private NbdServer _server = null!;

    private ServerCounters Counters => _server.Counters;

    [SetUp]
    public void Start()
    {
        _directory = Directory.CreateTempSubdirectory("blockoverlay-counters-").FullName;
        _catalog = new ExportCatalog();
        _catalog.Add("disk", new MemoryExport((long)Size));
        _catalog.Add("failing", new FailingExport((long)Size));
        _server = new NbdServer(_catalog, new NbdServerOptions(), NullLoggerFactory.Instance);
        _server.Listen(ListenAddress.Parse("unix:" + SocketPath));
    }

    [TearDown]
    public async Task Stop()
    {
        await _server.DisposeAsync();
        foreach (var (_, export) in _catalog.Snapshot)
        {
            await export.DisposeAsync();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private string SocketPath => Path.Combine(_directory, "nbd.sock");

    private NbdClient ConnectTo(string export)
    {
        var client = new NbdClient();
        client.AddMetaContext(MetaContexts.BaseAllocation);
        client.SetStrictMode(StrictMode.None); // so out-of-range requests reach the server
        client.ConnectUri($"nbd+unix:///{export}?socket={SocketPath}");
        return client;
    }

    [Test]
    public async Task Two_connections_are_counted_request_by_request()
    {
        using var good = ConnectTo("disk");
        using var bad = ConnectTo("failing");
        Assert.That((Counters.ConnectionsOpened, Counters.ConnectionsOpen), Is.EqualTo((2L, 2L)), "both open");

        good.Pwrite(Pattern(4096, 1), 0);
        good.Read(4096, 0);
        good.Read(4096, 0);
        good.Flush();
        good.Trim(4096, 4096);
        good.Zero(4096, 8192);
        good.Cache(4096, 0);
        good.BlockStatus(4096, 0);
        Assert.That(ErrnoOf(() => good.Read(2, Size - 1)), Is.EqualTo(EINVAL), "read past the end is rejected");
        Assert.That(ErrnoOf(() => good.Pwrite(new byte[2], Size - 1)), Is.EqualTo(ENOSPC), "write past the end is rejected");

        Assert.That(ErrnoOf(() => bad.Pwrite(new byte[512], 0)), Is.EqualTo(ENOSPC), "the export fails the write");
        Assert.That(ErrnoOf(() => bad.Read(512, 0)), Is.EqualTo(EIO), "the export fails the read");
        bad.Flush();

        good.Shutdown();
        bad.Shutdown();
        await WaitUntilAsync(() => Counters.ConnectionsOpen == 0);

        Assert.Multiple(() =>
        {
            Assert.That(Counters.ConnectionsOpened, Is.EqualTo(2), "connections opened");
            AssertRequests(new()
            {
                [NbdCommand.Read] = 4, [NbdCommand.Write] = 3, [NbdCommand.Flush] = 2, [NbdCommand.Trim] = 1,
                [NbdCommand.Cache] = 1, [NbdCommand.WriteZeroes] = 1, [NbdCommand.BlockStatus] = 1, [NbdCommand.Disconnect] = 2,
            });
            AssertErrors(new() { [NbdError.InvalidArgument] = 1, [NbdError.NoSpace] = 2, [NbdError.IoError] = 1 });
            Assert.That(Counters.RejectedRequests, Is.EqualTo(2), "refused before any I/O");
            Assert.That(Counters.FailedRequests, Is.EqualTo(2), "failed by the export");
            Assert.That(Counters.BytesRead, Is.EqualTo(8192), "only the two reads that returned data");
            Assert.That(Counters.BytesWritten, Is.EqualTo(4096), "only the write the export took");
        });
    }

    [Test]
    public async Task A_connection_over_streams_is_counted_like_a_socket()
    {
        // The client hangs up during the greeting: still one connection, opened and closed.
        await _server.ServeStreamAsync(new MemoryStream(), new MemoryStream(), "stdio", PeerIdentity.Anonymous);

        Assert.That((Counters.ConnectionsOpened, Counters.ConnectionsOpen), Is.EqualTo((1L, 0L)));
    }

    [Test]
    public void Concurrent_recording_loses_no_count()
    {
        var counters = new ServerCounters();
        const int Threads = 8, Each = 100_000;
        Parallel.For(0, Threads, new ParallelOptions { MaxDegreeOfParallelism = Threads }, _ =>
        {
            for (int i = 0; i < Each; i++)
            {
                counters.RecordRequest(NbdCommand.Write);
                counters.RecordRejected(NbdError.NoSpace);
                counters.RecordWritten(3);
            }
        });

        Assert.Multiple(() =>
        {
            Assert.That(counters.RequestsOf(NbdCommand.Write), Is.EqualTo(Threads * Each));
            Assert.That(counters.ErrorsOf(NbdError.NoSpace), Is.EqualTo(Threads * Each));
            Assert.That(counters.RejectedRequests, Is.EqualTo(Threads * Each));
            Assert.That(counters.BytesWritten, Is.EqualTo(3L * Threads * Each));
        });
    }

    [Test]
    public void A_command_or_error_outside_the_protocol_is_ignored_not_thrown()
    {
        var counters = new ServerCounters();
        counters.RecordRequest((NbdCommand)0xFFFF);
        counters.RecordRejected((NbdError)uint.MaxValue);

        Assert.Multiple(() =>
        {
            Assert.That(counters.RequestsOf((NbdCommand)0xFFFF), Is.Zero);
            Assert.That(counters.RejectedRequests, Is.EqualTo(1), "the rejection itself still counts");
            Assert.That(Enum.GetValues<NbdError>().Sum(e => counters.ErrorsOf(e)), Is.Zero);
        });
    }

    /// <summary>Every command has exactly the expected count (0 when not listed).</summary>
    private void AssertRequests(Dictionary<NbdCommand, long> expected)
    {
        foreach (var command in Enum.GetValues<NbdCommand>())
        {
            Assert.That(Counters.RequestsOf(command), Is.EqualTo(expected.GetValueOrDefault(command)), $"requests {command}");
        }
    }

    /// <summary>Every error code has exactly the expected count (0 when not listed).</summary>
    private void AssertErrors(Dictionary<NbdError, long> expected)
    {
        foreach (var error in Enum.GetValues<NbdError>())
        {
            Assert.That(Counters.ErrorsOf(error), Is.EqualTo(expected.GetValueOrDefault(error)), $"errors {error}");
        }
    }

    private static int ErrnoOf(TestDelegate action) => Assert.Throws<NbdException>(action)!.Errno;

    /// <summary>The server closes its side after the client's DISC, on its own time: wait for it.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "timed out waiting for the connections to close");
            await Task.Delay(10);
        }
    }

    /// <summary>An export whose writes run out of space and whose reads hit an I/O error; flush works.</summary>
    private sealed class FailingExport(long size) : IExport
    {
        public long Size => size;

        public ExportCapabilities Capabilities => ExportCapabilities.Flush;

        public string Description => "failing";

        public ValueTask ReadAsync(long offset, Memory<byte> buffer) =>
            ValueTask.FromException(new IOException("the device failed"));

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, WriteFlags flags) =>
            ValueTask.FromException(new ExportException(ExportError.NoSpace, "no space"));

        public ValueTask FlushAsync() => ValueTask.CompletedTask;

        // The test sends none of these.
        public ValueTask TrimAsync(long offset, long length, WriteFlags flags) => throw new NotSupportedException();

        public ValueTask ZeroAsync(long offset, long length, ZeroFlags flags) => throw new NotSupportedException();

        public ValueTask CacheAsync(long offset, long length) => throw new NotSupportedException();

        public ValueTask GetAllocationAsync(long offset, long length, int maxExtents, List<Extent> extents) =>
            throw new NotSupportedException();

        public ValueTask ClientDetachedAsync() => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
