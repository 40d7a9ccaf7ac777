using Microsoft.Extensions.Logging;

namespace BlockOverlay.Engine.Cache;

/// <summary>What the write-back cache logs (source-generated). Expected failures are counted, not logged.</summary>
internal static partial class CacheLog
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Error, Message = "background write-back failed unexpectedly (the data stays dirty and is retried)")]
    public static partial void BackgroundBug(ILogger logger, Exception exception);
}
