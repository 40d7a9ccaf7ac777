using System.Collections.Concurrent;
using BlockOverlay.Host.Live;
using BlockOverlay.Io;
using BlockOverlay.Store;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>
/// A bug inside an instance command is not told as a refused command: offline it leaves the
/// command (for the CLI to print with its stack, exit 70); live the server logs it with its
/// stack and answers that it was a bug (exit 70), and goes on serving.
/// </summary>
[TestFixture]
public sealed class InstanceBugTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-bug-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [TestCase(typeof(ArgumentException))]
    [TestCase(typeof(ArgumentOutOfRangeException))]
    [TestCase(typeof(InvalidOperationException))]
    public async Task A_bug_in_an_offline_command_is_thrown_not_answered_as_a_failed_command(Type bug)
    {
        string store = await CreateStoreAsync();
        string output = Path.Combine(_directory, "a.raw");
        await using var session = await StoreSession.OpenAsync(store);
        Assert.That((await InstanceOperations.RunAsync(new CreateRequest("a", null, "4M", null, null, []), session.Store, live: null)).ExitCode, Is.Zero);

        // The caller's progress callback breaks its contract in the middle of a commit.
        var thrown = Assert.CatchAsync(async () => await InstanceOperations.RunAsync(new CommitRequest("a", output), session.Store, live: null,
            _ => throw (Exception)Activator.CreateInstance(bug, "a bug in the progress callback")!));

        Assert.That(thrown, Is.TypeOf(bug));
        Assert.That(Directory.GetFiles(_directory).Select(Path.GetFileName), Is.EquivalentTo(new[] { "store" }), "no image, no partial file");
    }

    [Test]
    public async Task A_bug_in_a_live_command_is_logged_with_its_stack_and_answered_as_a_bug()
    {
        string store = Path.Combine(_directory, "store");
        var logger = new CapturingLogger();
        int calls = 0;
        var server = new ControlServer(ControlServer.PathFor(store), (request, _, _) =>
            Interlocked.Increment(ref calls) == 1
                ? throw new ArgumentOutOfRangeException(nameof(request), "a bug in the command")
                : Task.FromResult<InstanceResponse>(new InstanceList([])),
            logger);
        await using (server)
        {
            server.Start();

            var answer = ControlClient.TrySend(store, new ListRequest());
            var printed = InstanceText.Render(new ListRequest(), answer!);

            Assert.That(answer!.ExitCode, Is.EqualTo(70), answer.ToString);
            Assert.That(printed.Stderr, Does.StartWith("blockoverlay instance list: internal error in the server, a bug")
                .And.Contain("ArgumentOutOfRangeException").And.Contain("a bug in the command"));
            var error = logger.Entries.Where(e => e.Level == LogLevel.Error).Select(e => e.Exception).SingleOrDefault();
            Assert.That(error, Is.TypeOf<ArgumentOutOfRangeException>(), "logged at Error with the exception");
            Assert.That(error!.StackTrace, Is.Not.Null.And.Not.Empty, "with its stack");
            Assert.That(ControlClient.TrySend(store, new ListRequest()), Is.TypeOf<InstanceList>(), "the next command is served");
        }
    }

    private async Task<string> CreateStoreAsync()
    {
        string store = Path.Combine(_directory, "store");
        await using var device = await FileDevice.CreateAsync(store, 64L << 20);
        await UpperStore.CreateAsync(device);
        return store;
    }
}
