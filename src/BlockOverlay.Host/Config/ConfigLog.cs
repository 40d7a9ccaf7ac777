using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Config;

/// <summary>
/// Events about the config. Which file the server read is worth a line: with
/// <c>$BLOCKOVERLAY_CONFIG</c> it is not on the command line, and an operator chasing a
/// setting should not have to guess. (Ids from 30, clear of the host's and the protocol's.)
/// </summary>
internal static partial class ConfigLog
{
    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "config {Path}")]
    public static partial void Loaded(ILogger logger, string path);
}
