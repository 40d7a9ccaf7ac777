using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// <c>serve</c> runs socket continuations on the socket engine's threads, which the runtime
/// then starts one per core (by default it starts one per 30 cores and hands every completion
/// to the thread pool); an operator's own DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS wins
/// and is logged. The engine's threads are what the process shows of the choice: their names.
/// </summary>
public class SocketCompletionTests
{
    private const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>The server's threads named as the runtime names its socket engine's.</summary>
    private static int SocketEngineThreads(int pid) =>
        Directory.GetDirectories($"/proc/{pid}/task")
            .Count(task => File.Exists(Path.Combine(task, "comm")) && File.ReadAllText(Path.Combine(task, "comm")).Trim() == ".NET Sockets");

    [Test]
    public void Serve_runs_socket_completions_on_one_engine_thread_per_core()
    {
        Assume.That(Environment.ProcessorCount, Is.InRange(2, 29), "with one core, or thirty, both ways start as many engine threads");
        using var server = ServerProcess.Start("disk=memory:1M");

        Assert.Multiple(() =>
        {
            Assert.That(SocketEngineThreads(server.Pid), Is.EqualTo(Environment.ProcessorCount), server.ToString());
            Assert.That(server.Log, Does.Not.Contain("socket completions run on the thread pool"));
        });
    }

    [Test]
    public void The_operators_environment_wins_and_is_logged()
    {
        Assume.That(Environment.ProcessorCount, Is.InRange(2, 29), "with one core, or thirty, both ways start as many engine threads");
        using var server = ServerProcess.StartWithEnvironment(new Dictionary<string, string> { [Variable] = "0" }, "disk=memory:1M");

        Assert.Multiple(() =>
        {
            Assert.That(SocketEngineThreads(server.Pid), Is.LessThan(Environment.ProcessorCount), server.ToString());
            Assert.That(server.Log, Does.Contain($"socket completions run on the thread pool ({Variable}=0 in the environment"));
        });
    }
}
