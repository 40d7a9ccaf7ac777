using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Config;

/// <summary>How log events are written on standard error.</summary>
internal enum LogFormat
{
    /// <summary>One line of text per event, for people.</summary>
    Text,

    /// <summary>One JSON object per line, for log shippers.</summary>
    Json,
}

/// <summary>
/// The names of log levels and formats, the same in the config file and on the command
/// line. Only the four levels an operator chooses between are named; the others (trace,
/// critical, none) would only be ways to hide the errors.
/// </summary>
internal static class LogChoices
{
    public const string Levels = "debug, information, warning or error";
    public const string Formats = "text or json";

    public static LogLevel ParseLevel(string text) => text.ToLowerInvariant() switch
    {
        "debug" => LogLevel.Debug,
        "information" => LogLevel.Information,
        "warning" => LogLevel.Warning,
        "error" => LogLevel.Error,
        _ => throw new FormatException($"'{text}' is not a log level: use {Levels}"),
    };

    public static LogFormat ParseFormat(string text) => text.ToLowerInvariant() switch
    {
        "text" => LogFormat.Text,
        "json" => LogFormat.Json,
        _ => throw new FormatException($"'{text}' is not a log format: use {Formats}"),
    };
}
