using System.Text.Encodings.Web;
using System.Text.Json;
using BlockOverlay.Host.Config;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host;

/// <summary>
/// Logging of the host: one line per event, always on standard error (stdout may carry NBD).
/// Text for people, or one JSON object per line for log shippers (the console logger's own
/// JSON formatter: fields Timestamp, EventId, LogLevel, Category, Message and State).
/// </summary>
internal static class HostLogging
{
    private const string TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff";

    public static ILoggerFactory Create(LogLevel minimum, LogFormat format) => LoggerFactory.Create(builder =>
    {
        builder.SetMinimumLevel(minimum);
        builder.AddConsole(options => options.LogToStandardErrorThreshold = LogLevel.Trace);
        if (format == LogFormat.Json)
        {
            builder.AddJsonConsole(options =>
            {
                options.TimestampFormat = TimestampFormat + "Z";
                options.UseUtcTimestamp = true;
                // Relaxed escaping keeps quotes and non-ASCII readable in the log (the default
                // escapes them for embedding in HTML, which a log line never is).
                options.JsonWriterOptions = new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            });
        }
        else
        {
            builder.AddSimpleConsole(options =>
            {
                options.SingleLine = true;
                options.TimestampFormat = TimestampFormat + " ";
                options.UseUtcTimestamp = true;
            });
        }
    });
}

/// <summary>Events the host logs.</summary>
internal static partial class HostLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "stopping: finishing requests in flight (signal again to exit at once)")]
    public static partial void Stopping(ILogger logger);

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "instance '{Instance}' is not served: {Reason}")]
    public static partial void InstanceRefused(ILogger logger, string instance, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "store opened with {Count} instances (it was closed {How})")]
    public static partial void StoreOpened(ILogger logger, int count, string how);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "instance '{Instance}' is unclean: it flushes in volatile mode and the store crashed while it was in use, " +
                                                                   "so it holds whatever reached the store, not a flushed state (clear with: blockoverlay instance set {Instance} --flush-mode ...)")]
    public static partial void InstanceUnclean(ILogger logger, string instance);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "metrics at http://{EndPoint}/metrics")]
    public static partial void MetricsServed(ILogger logger, System.Net.EndPoint endPoint);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "control: instance {Command} {Instance}: exit {ExitCode}")]
    public static partial void ControlCommand(ILogger logger, string command, string instance, int exitCode);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "instance '{Instance}': no longer served ({Connections} connection(s) told to finish and close)")]
    public static partial void InstanceDetaching(ILogger logger, string instance, int connections);

    [LoggerMessage(EventId = 16, Level = LogLevel.Warning, Message = "instance '{Instance}': access rules changed; {Connections} open connection(s) they no longer allow are being closed")]
    public static partial void AccessRevoked(ILogger logger, string instance, int connections);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "instance '{Instance}': connections still busy {Seconds} s after it was removed; closing it anyway")]
    public static partial void DetachTimedOut(ILogger logger, string instance, double seconds);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "writing back an instance at shutdown failed (the cache tries once more): {Reason}")]
    public static partial void WriteBackFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "writing back an instance at shutdown failed unexpectedly (the cache tries once more)")]
    public static partial void WriteBackCrashed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 13, Level = LogLevel.Error, Message = "control: instance {Command} hit a bug (the caller was told so)")]
    public static partial void ControlCommandCrashed(ILogger logger, string command, Exception exception);

    [LoggerMessage(EventId = 14, Level = LogLevel.Error, Message = "metrics: collecting hit a bug (that scrape got a 500)")]
    public static partial void MetricsCrashed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "control socket at {Path}")]
    public static partial void ControlListening(ILogger logger, string path);

    [LoggerMessage(EventId = 15, Level = LogLevel.Warning, Message = "{Reason}")]
    public static partial void IoBackendFallback(ILogger logger, string reason);

    [LoggerMessage(EventId = 18, Level = LogLevel.Information, Message = "{Reason}")]
    public static partial void SocketCompletionsOnPool(ILogger logger, string reason);

    [LoggerMessage(EventId = 17, Level = LogLevel.Warning, Message = "store {Store} is locked by another process; waiting up to {Seconds} s for it to let go (a server killed a moment ago does once the kernel has closed its files)")]
    public static partial void StoreLockWait(ILogger logger, string store, double seconds);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "no control socket at {Path} ({Reason}): instances cannot be changed while this server runs")]
    public static partial void ControlUnavailable(ILogger logger, string path, string reason);
}
