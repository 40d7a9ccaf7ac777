using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host.Tests;

/// <summary>
/// One way to say a command's failure: what the operator is told is one line and exit code 1;
/// a bug goes out with its stack trace and exit code 70, never looking like bad input.
/// </summary>
[TestFixture]
public sealed class OperatorFailuresTests
{
    /// <summary>Every kind of failure an operator is told about, with the message it carries.</summary>
    private static IEnumerable<TestCaseData> OperatorFailures()
    {
        yield return Case(() => new IOException("the device failed"));
        yield return Case(() => new FileNotFoundException("/s: no such store"));
        yield return Case(() => new StoreFullException("the store is full"));
        yield return Case(() => new UnauthorizedAccessException("access to /s is denied"));
        yield return Case(() => new SocketException((int)SocketError.AddressAlreadyInUse));
        yield return Case(() => new FormatException("'12Q' is not a size"));
        yield return Case(() => new JsonException("the server's answer is not JSON"));
        yield return Case(() => new StoreFormatException("no store: no valid superblock"));
        yield return Case(() => new InstanceException("no instance named 'a'"));
        yield return Case(() => new BaseImageChangedException("the base changed"));
        yield return Case(() => new ExportException(ExportError.NoSpace, "over quota"));
        yield return Case(() => new ExportNameTakenException("disk"));

        static TestCaseData Case(Func<Exception> make) => new TestCaseData(make).SetArgDisplayNames(make().GetType().Name);
    }

    /// <summary>Bugs: a broken contract or state, whatever their message says.</summary>
    private static IEnumerable<TestCaseData> Bugs()
    {
        yield return Case(() => new ArgumentException("a store needs at least 1 byte"));
        yield return Case(() => new ArgumentNullException("name"));
        yield return Case(() => new ArgumentOutOfRangeException("request", "an instance command without an operation"));
        yield return Case(() => new InvalidOperationException("double free"));
        yield return Case(() => new ObjectDisposedException("store"));
        yield return Case(() => new KeyNotFoundException("instance 7"));
        yield return Case(() => new NotSupportedException("no such reply"));

        static TestCaseData Case(Func<Exception> make) => new TestCaseData(make).SetArgDisplayNames(make().GetType().Name);
    }

    [TestCaseSource(nameof(OperatorFailures))]
    public void An_operator_failure_is_told_by_its_message(Func<Exception> make)
    {
        var failure = make();

        Assert.That(Host.OperatorFailures.MessageFor(failure), Is.EqualTo(failure.Message));
    }

    [TestCaseSource(nameof(Bugs))]
    public void A_bug_has_no_operator_message(Func<Exception> make)
    {
        Assert.That(Host.OperatorFailures.MessageFor(make()), Is.Null);
    }

    [TestCaseSource(nameof(OperatorFailures))]
    public async Task A_command_that_meets_an_operator_failure_says_it_in_one_line_and_exits_1(Func<Exception> make)
    {
        var (exit, stderr) = await InvokeFailingAsync(make);

        Assert.That(exit, Is.EqualTo(1), stderr);
        Assert.That(stderr, Is.EqualTo($"blockoverlay thing do: {make().Message}\n"));
    }

    [TestCaseSource(nameof(Bugs))]
    public async Task A_command_that_hits_a_bug_prints_its_stack_trace_and_exits_70(Func<Exception> make)
    {
        var (exit, stderr) = await InvokeFailingAsync(make);

        Assert.That(exit, Is.EqualTo(70), stderr);
        Assert.That(stderr, Does.StartWith("blockoverlay thing do: internal error, a bug"));
        Assert.That(stderr, Does.Contain(make().GetType().FullName + ":").And.Contain("   at "), "the exception and its stack");
    }

    [Test]
    public void A_device_too_small_for_a_store_is_an_operator_failure()
    {
        var failure = Assert.CatchAsync(async () => await UpperStore.CreateAsync(new MemoryDevice(64 << 10)));

        Assert.That(Host.OperatorFailures.MessageFor(failure!), Does.Contain("a store needs at least"), failure!.ToString);
    }

    [Test]
    public void An_rbd_snapshot_given_as_a_store_is_bad_input_refused_before_the_cluster_is_asked()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Assert.ThrowsAsync<FormatException>(async () => await StoreDevices.OpenAsync("rbd:pool/image@snap"))!.Message,
                Does.Contain("rbd:pool/image@snap is a snapshot"));
            Assert.That(Assert.ThrowsAsync<FormatException>(async () => await StoreDevices.CreateAsync("rbd:pool/image@snap", 64 << 20))!.Message,
                Does.Contain("rbd:pool/image@snap is a snapshot"));
        });
    }

    /// <summary>Runs <c>thing do</c>, a command that throws what <paramref name="make"/> makes, the way the CLI runs its verbs.</summary>
    private static async Task<(int Exit, string Stderr)> InvokeFailingAsync(Func<Exception> make)
    {
        var command = new Command("do");
        command.SetAction(async (_, _) =>
        {
            await Task.Yield();
            throw make();
        });
        var root = new RootCommand { new Command("thing") { command } };
        await using var error = new StringWriter { NewLine = "\n" };

        int exit = await CommandErrors.InvokeAsync(root.Parse(["thing", "do"]), error);
        return (exit, error.ToString());
    }
}
