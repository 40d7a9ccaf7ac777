using BlockOverlay.Io.Interop;

namespace BlockOverlay.Io;

/// <summary>How a <see cref="FileDevice"/> reaches its file: the choice of <c>serve --io-backend</c>.</summary>
public enum IoBackend
{
    /// <summary>io_uring where this kernel and process allow it, else <see cref="Threads"/>.</summary>
    Auto,

    /// <summary>io_uring (<see cref="UringFileIo"/>): submitted in batches, reaped by one thread per file.</summary>
    Uring,

    /// <summary>pread/pwrite on the thread pool, durable writes and fdatasync on their own threads (<see cref="ThreadedFileIo"/>).</summary>
    Threads,
}

/// <summary>Turns <see cref="IoBackend.Auto"/> into a backend this process can use, once.</summary>
/// <remarks>
/// Why io_uring first: measured side by side (perf/io-backend.sh, its section of
/// perf/RESULTS.md). Whether io_uring is there is only known by trying: io_uring_setup answers
/// ENOSYS on kernels before 5.1 (or built without it), EPERM under
/// <c>kernel.io_uring_disabled</c> or a seccomp filter (containers); the shim may not have been
/// built. A probe ring of a few entries is made and destroyed; its failure is the reason given.
/// </remarks>
public static class IoBackends
{
    /// <summary>The names <c>--io-backend</c> and the config's <c>ioBackend</c> take.</summary>
    public const string Names = "auto, uring or threads";

    private const uint ProbeEntries = 4;

    /// <summary>Parses a backend's name; <see cref="FormatException"/> naming the choices otherwise.</summary>
    public static IoBackend Parse(string text) => text.ToLowerInvariant() switch
    {
        "auto" => IoBackend.Auto,
        "uring" => IoBackend.Uring,
        "threads" => IoBackend.Threads,
        _ => throw new FormatException($"'{text}' is not an I/O backend: use {Names}"),
    };

    private static readonly Lazy<(IoBackend Chosen, string? Fallback)> s_auto = new(() => Choose(() => Probe(ProbeEntries)));

    /// <summary>
    /// The backend <paramref name="requested"/> means here, and why <see cref="IoBackend.Auto"/>
    /// fell back to <see cref="IoBackend.Threads"/> (null when it did not). Auto probes once per process.
    /// </summary>
    public static (IoBackend Chosen, string? Fallback) Resolve(IoBackend requested) =>
        requested == IoBackend.Auto ? s_auto.Value : (requested, null);

    /// <summary>Auto's choice given a probe that returns why io_uring cannot be used, or null when it can.</summary>
    internal static (IoBackend Chosen, string? Fallback) Choose(Func<string?> probe) =>
        probe() is { } why ? (IoBackend.Threads, $"io_uring is unavailable ({why}); using the threads backend (pread/pwrite)") : (IoBackend.Uring, null);

    /// <summary>Makes and destroys a ring of <paramref name="entries"/>; null if that worked, else why not.</summary>
    internal static string? Probe(uint entries)
    {
        try
        {
            var result = UringShim.Create(entries, 2 * entries, out var ring);
            if (result < 0)
            {
                return $"io_uring_setup: {Errno.Describe(-result)}";
            }

            UringShim.Destroy(ring);
            return null;
        }
        catch (DllNotFoundException e)
        {
            return $"the native shim libblockoverlay_uring.so could not be loaded: {e.Message}";
        }
    }
}
