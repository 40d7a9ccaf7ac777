using System.Diagnostics;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.LibNbd;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// One way to say an error: every reason an export gives maps to one wire error, an I/O
/// failure is EIO, and a bug is EIO that is logged at Error with its stack trace, never a
/// quiet I/O error.
/// </summary>
public class FailureMappingTests
{
    private const int EIO = 5;

    [Test]
    public void Every_export_reason_has_its_wire_error()
    {
        var expected = new Dictionary<ExportError, NbdError>
        {
            [ExportError.IoError] = NbdError.IoError,
            [ExportError.NoSpace] = NbdError.NoSpace,
            [ExportError.InvalidArgument] = NbdError.InvalidArgument,
            [ExportError.NotSupported] = NbdError.NotSupported,
            [ExportError.ReadOnly] = NbdError.NotPermitted,
        };

        Assert.Multiple(() =>
        {
            Assert.That(expected.Keys, Is.EquivalentTo(Enum.GetValues<ExportError>()), "the table names every member");
            foreach (var reason in Enum.GetValues<ExportError>())
            {
                Assert.That(FailureMapping.WireErrorOf(reason), Is.EqualTo(expected[reason]), reason.ToString());
            }
        });
    }

    [Test]
    public void Told_failures_keep_their_reason_and_everything_else_is_a_bug()
    {
        Assert.Multiple(() =>
        {
            foreach (var reason in Enum.GetValues<ExportError>())
            {
                Assert.That(ExportFailures.Classify(new ExportException(reason, "told")), Is.EqualTo(reason));
            }

            Assert.That(ExportFailures.Classify(new IOException("device")), Is.EqualTo(ExportError.IoError));
            Assert.That(ExportFailures.Classify(new EndOfStreamException()), Is.EqualTo(ExportError.IoError), "an IOException's kind");
            Assert.That(ExportFailures.Classify(new ArgumentException("bug")), Is.Null);
            Assert.That(ExportFailures.Classify(new InvalidOperationException("bug")), Is.Null);
            Assert.That(ExportFailures.Classify(new ObjectDisposedException("export")), Is.Null);
            Assert.That(ExportFailures.Classify(new FormatException("bug")), Is.Null);
        });
    }

    [Test]
    public async Task A_bug_in_a_request_is_EIO_logged_at_error_with_its_stack()
    {
        await using var server = new TestServer(("disk", new ThrowingExport(() => new ArgumentException("a bug in the export"))));
        using var client = Connect(server, "disk");

        Assert.That(Assert.Throws<NbdException>(() => client.Read(512, 0))!.Errno, Is.EqualTo(EIO));
        client.Pwrite(new byte[512], 0); // the connection stays for the next request

        var errors = server.Log.Where(line => line.StartsWith("Error:", StringComparison.Ordinal)).ToList();
        Assert.That(errors, Has.Count.EqualTo(1), string.Join("\n", server.Log));
        Assert.That(errors[0], Does.Contain("System.ArgumentException: a bug in the export").And.Contain("   at "),
            "the exception is logged with its stack trace");
    }

    [Test]
    public async Task A_device_failure_is_EIO_and_not_logged_as_a_bug()
    {
        await using var server = new TestServer(("disk", new ThrowingExport(() => new IOException("the device failed"))));
        using var client = Connect(server, "disk");

        Assert.That(Assert.Throws<NbdException>(() => client.Read(512, 0))!.Errno, Is.EqualTo(EIO));

        Assert.Multiple(() =>
        {
            Assert.That(server.Log.Where(line => line.StartsWith("Error:", StringComparison.Ordinal)), Is.Empty);
            Assert.That(server.Log, Has.Some.StartsWith("Warning:").And.Contain("the device failed"));
        });
    }

    [Test]
    public async Task A_bug_while_detaching_is_logged_at_error_with_its_stack()
    {
        await using var server = new TestServer(("disk", new ThrowingExport(() => new InvalidOperationException("a bug at detach"))));
        using (var client = Connect(server, "disk"))
        {
            client.Shutdown();
        }

        var clock = Stopwatch.StartNew();
        while (!server.Log.Any(line => line.StartsWith("Error:", StringComparison.Ordinal) && line.Contains("a bug at detach", StringComparison.Ordinal)))
        {
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), string.Join("\n", server.Log));
            await Task.Delay(10);
        }
    }

    /// <summary>A memory export whose reads and detaches throw what it is given; writes work.</summary>
    private sealed class ThrowingExport(Func<Exception> failure) : MemoryExportDouble(1 << 20, "throwing")
    {
        public override ValueTask ReadAsync(long offset, Memory<byte> buffer) => ValueTask.FromException(failure());

        public override ValueTask ClientDetachedAsync() => ValueTask.FromException(failure());
    }
}
