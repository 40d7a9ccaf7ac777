namespace BlockOverlay.Host;

/// <summary>
/// Where the server's socket continuations run: on the socket engine's own threads (one per
/// core), not handed from them to the thread pool, unless the operator's environment says
/// otherwise.
/// </summary>
/// <remarks>
/// By default .NET's socket engine waits in epoll on a thread of its own and queues every
/// completed receive or send to the thread pool, so each request's bytes cost a second thread
/// a wake-up, and on a crowded host a wait in the run queue (perf/RESULTS.md: context switches
/// dominate every matrix row's profile). Run inline, the request is parsed, validated and, for
/// a write the cache takes at once, copied and answered on the thread that saw the bytes. That is
/// safe only because nothing on the request path blocks a thread (the export contract,
/// <c>IExport</c>): store I/O completes through io_uring or its own threads and goes on on the pool.
/// The runtime reads <see cref="Variable"/> once, when the first socket starts the engine, so
/// this runs before the server opens any socket.
/// </remarks>
internal static class SocketCompletions
{
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Asks for inline completions unless <see cref="Variable"/> is set already; null when they
    /// are inline, else what the log should say (the operator chose the thread pool).
    /// </summary>
    public static string? PreferInline()
    {
        switch (Environment.GetEnvironmentVariable(Variable))
        {
            case null or "":
                Environment.SetEnvironmentVariable(Variable, "1");
                return null;
            case "1":
                return null;
            case var chosen:
                return $"socket completions run on the thread pool ({Variable}={chosen} in the environment; unset, they run on the socket engine's threads)";
        }
    }
}
