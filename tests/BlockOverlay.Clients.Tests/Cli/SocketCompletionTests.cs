using System.Globalization;
using BlockOverlay.Clients.Tests.Fixtures;
using BlockOverlay.LibNbd;

namespace BlockOverlay.Clients.Tests.Cli;

/// <summary>
/// <c>serve</c> runs socket continuations on the socket engine's threads: a client's requests
/// are then handled on those threads (named ".NET Sockets"), not handed to the thread pool's
/// workers (".NET TP Worker") as .NET does by default. An operator's own
/// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS wins, and is logged. What is compared is the
/// CPU time each kind of thread spent while a client wrote 4 KiB blocks one at a time.
/// </summary>
public class SocketCompletionTests
{
    private const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
    private const int Writes = 10_000;

    /// <summary>Clock ticks of CPU (user + system) the server's threads of each name have used so far.</summary>
    private static Dictionary<string, long> CpuByThreadName(int pid)
    {
        var ticks = new Dictionary<string, long>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended meanwhile
            }

            // "tid (comm) state ...": fields after the comm; utime and stime are the 14th and 15th of the line.
            int close = stat.LastIndexOf(')');
            string name = stat[(stat.IndexOf('(', StringComparison.Ordinal) + 1)..close];
            var fields = stat[(close + 2)..].Split(' ');
            long used = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            ticks[name] = ticks.GetValueOrDefault(name) + used;
        }

        return ticks;
    }

    /// <summary>CPU ticks the engine's threads and the pool's workers spent on <see cref="Writes"/> writes at queue depth 1.</summary>
    private static (long Engine, long Workers) CpuOfWrites(ServerProcess server)
    {
        using var client = new NbdClient();
        client.ConnectUri(server.UnixUri("disk"));
        var before = CpuByThreadName(server.Pid);
        var block = new byte[4096];
        for (int i = 0; i < Writes; i++)
        {
            client.Pwrite(block, (ulong)(i % 256) * 4096);
        }

        var after = CpuByThreadName(server.Pid);
        long Spent(string name) => after.GetValueOrDefault(name) - before.GetValueOrDefault(name);
        TestContext.Out.WriteLine($"CPU ticks over {Writes} writes: engine threads {Spent(".NET Sockets")}, pool workers {Spent(".NET TP Worker")}");
        return (Spent(".NET Sockets"), Spent(".NET TP Worker"));
    }

    [Test]
    public void Serve_handles_requests_on_the_socket_engines_threads()
    {
        using var server = ServerProcess.Start("disk=memory:1M");
        var (engine, workers) = CpuOfWrites(server);

        Assert.Multiple(() =>
        {
            Assert.That(engine, Is.GreaterThan(workers), $"CPU ticks: engine threads {engine}, pool workers {workers}\n{server}");
            Assert.That(server.Log, Does.Not.Contain("socket completions run on the thread pool"));
        });
    }

    [Test]
    public void The_operators_environment_wins_and_is_logged()
    {
        using var server = ServerProcess.StartWithEnvironment(new Dictionary<string, string> { [Variable] = "0" }, "disk=memory:1M");
        var (engine, workers) = CpuOfWrites(server);

        Assert.Multiple(() =>
        {
            Assert.That(workers, Is.GreaterThan(engine), $"CPU ticks: engine threads {engine}, pool workers {workers}\n{server}");
            Assert.That(server.Log, Does.Contain($"socket completions run on the thread pool ({Variable}=0 in the environment"));
        });
    }
}
