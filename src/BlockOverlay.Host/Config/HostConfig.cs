using System.Net;
using System.Text.Json;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Config;

/// <summary>
/// What a config file says: the store, listeners, metrics address, plain exports, cache
/// limits, connection limits, TLS and logging of <c>blockoverlay serve</c> (and the store of the <c>instance</c>
/// commands). Command-line flags override it key by key (<see cref="ServeSettings"/>).
/// </summary>
/// <remarks>
/// <para><b>Why JSON.</b> System.Text.Json is part of .NET, so a config costs no new
/// dependency (TOML would need a third-party parser). Comments (<c>//</c>, <c>/* */</c>) and
/// trailing commas are accepted, which takes away most of what makes JSON tiresome to edit
/// by hand. The file is read into <see cref="ConfigFile"/> by the source-generated
/// <see cref="ConfigJson"/>.</para>
/// <para><b>Strict.</b> An unknown key is an error naming it (a misspelt limit must not
/// silently fall back to the default), and so are a key given twice and a value of the
/// wrong kind (<see cref="ConfigErrors"/> words them); values are parsed here with the
/// command line's own parsers, and the cache limits are checked with
/// <see cref="CacheOptions.Problem"/>, so a config that loads is one the server can run with.</para>
/// <para><b>Paths.</b> Relative paths (the store, <c>unix:</c> listeners, <c>file:</c>
/// exports) are relative to the config file's directory, not to wherever the server was
/// started: the file means the same thing from any working directory, and a config can sit
/// next to its store.</para>
/// <para><b>Errors.</b> Every problem, the file missing included, is one
/// <see cref="FormatException"/> naming the file and the key, so a caller has one thing to
/// catch and print as its one-line error.</para>
/// </remarks>
internal sealed class HostConfig
{
    /// <summary>Names the config file when <c>--config</c> is not given.</summary>
    public const string EnvironmentVariable = "BLOCKOVERLAY_CONFIG";

    /// <summary>The file, as an absolute path.</summary>
    public required string FilePath { get; init; }

    /// <summary>The store file (absolute), or null.</summary>
    public string? Store { get; init; }

    public IReadOnlyList<ListenAddress> Listen { get; init; } = [];

    /// <summary>The mode of the unix sockets serve creates (<c>socketMode</c>), or null.</summary>
    public UnixFileMode? SocketMode { get; init; }

    public IPEndPoint? Metrics { get; init; }

    public IReadOnlyList<ExportSpec> Exports { get; init; } = [];

    /// <summary>The defaults with whatever the file's <c>cache</c> changes; always valid.</summary>
    public CacheOptions Cache { get; init; } = new();

    /// <summary>The <c>limits</c> section over the NBD server's defaults.</summary>
    public NbdServerOptions Limits { get; init; } = new();

    /// <summary>The <c>tls</c> section: what it gives, paths absolute; its files are read when serving starts.</summary>
    public TlsSettings Tls { get; init; } = new();

    public LogLevel? LogLevel { get; init; }

    public LogFormat? LogFormat { get; init; }

    /// <summary>How the store file is read and written (<c>ioBackend</c>), or null.</summary>
    public IoBackend? IoBackend { get; init; }

    /// <summary>
    /// The store the <c>instance</c> commands work on: <paramref name="storeFlag"/> when given
    /// (the config is then not read), else the config's <c>store</c>; the config is
    /// <paramref name="configFlag"/> or else <c>$BLOCKOVERLAY_CONFIG</c>.
    /// </summary>
    /// <exception cref="FormatException">Neither names a store, or the config is not valid.</exception>
    public static string ResolveStore(string? storeFlag, string? configFlag)
    {
        if (!string.IsNullOrEmpty(storeFlag))
        {
            return storeFlag;
        }

        const string NameIt = "name the store with --store PATH or in the config file (--config)";
        var config = LoadFrom(configFlag);
        return config is null ? throw new FormatException(NameIt)
            : config.Store ?? throw new FormatException($"the config {config.FilePath} has no 'store': {NameIt}");
    }

    /// <summary>Loads the config <paramref name="configFlag"/> names, else the one the environment names, else none.</summary>
    public static HostConfig? LoadFrom(string? configFlag) =>
        Locate(configFlag, Environment.GetEnvironmentVariable(EnvironmentVariable)) is { } path ? Load(path) : null;

    /// <summary>The config file to read: the flag's, else the environment's; an empty value counts as not given.</summary>
    public static string? Locate(string? configFlag, string? environment) =>
        !string.IsNullOrEmpty(configFlag) ? configFlag
        : !string.IsNullOrEmpty(environment) ? environment
        : null;

    /// <summary>Reads and checks the config file at <paramref name="path"/>.</summary>
    public static HostConfig Load(string path)
    {
        string fullPath = Path.GetFullPath(path);
        string text;
        try
        {
            text = File.ReadAllText(fullPath);
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } reason)
        {
            throw new FormatException($"config {fullPath}: cannot read it: {reason}", e);
        }

        try
        {
            return Parse(text, fullPath);
        }
        catch (JsonException e)
        {
            throw new FormatException($"config {fullPath}: not valid JSON: {JsonProblem(e)}", e);
        }
        catch (FormatException e)
        {
            throw new FormatException($"config {fullPath}: {e.Message}", e);
        }
    }

    /// <summary>Parses <paramref name="json"/> as the file <paramref name="filePath"/> (absolute), whose directory relative paths start from.</summary>
    /// <exception cref="JsonException">The text is not JSON (<see cref="Load"/> words it with the line).</exception>
    /// <exception cref="FormatException">The JSON is not a valid config.</exception>
    public static HostConfig Parse(string json, string filePath)
    {
        string directory = Path.GetDirectoryName(filePath) ?? "/";
        using var document = JsonDocument.Parse(json, ConfigJson.DocumentOptions);
        ConfigFile file;
        try
        {
            file = document.Deserialize(ConfigJson.Default.ConfigFile)
                   ?? throw new FormatException("expected a JSON object { ... } at the top, not null");
        }
        catch (JsonException e)
        {
            throw new FormatException(ConfigErrors.Explain(e, document), e);
        }

        if (ConfigErrors.FirstNull(document.RootElement, typeof(ConfigFile)) is { } given)
        {
            throw new FormatException(given);
        }

        return new HostConfig
        {
            FilePath = filePath,
            Store = file.Store is { } store ? Interpret("store", store, text => ConfigPaths.File(directory, text)) : null,
            Listen = Each("listen", file.Listen, text => ListenAddress.Parse(ConfigPaths.Listen(directory, text))),
            SocketMode = file.SocketMode is { } mode ? Interpret("socketMode", mode, NbdServerOptions.ParseSocketMode) : null,
            Metrics = file.Metrics is { } metrics ? Interpret("metrics", metrics, MetricsEndpoint.ParseAddress) : null,
            Exports = Each("exports", file.Exports, text => ConfigPaths.Export(directory, ExportSpec.Parse(text))),
            Cache = ReadCache(file.Cache),
            Limits = ReadLimits(file.Limits),
            Tls = ReadTls(file.Tls, directory),
            LogLevel = file.Log?.Level is { } level ? Interpret("log.level", level, LogChoices.ParseLevel) : null,
            LogFormat = file.Log?.Format is { } format ? Interpret("log.format", format, LogChoices.ParseFormat) : null,
            IoBackend = file.IoBackend is { } backend ? Interpret("ioBackend", backend, IoBackends.Parse) : null,
        };
    }

    /// <summary>The defaults changed by the <c>cache</c> section; throws when the result is not a valid combination.</summary>
    private static CacheOptions ReadCache(CacheSection? cache)
    {
        var options = new CacheOptions();
        if (cache?.GlobalDirtyLimit is { } global)
        {
            options = options with { GlobalDirtyLimit = Interpret("cache.globalDirtyLimit", global, ByteSize.Parse).Bytes };
        }

        if (cache?.InstanceDirtyLimit is { } instance)
        {
            options = options with { InstanceDirtyLimit = Interpret("cache.instanceDirtyLimit", instance, ByteSize.Parse).Bytes };
        }

        if (cache?.BackgroundRatio is { } ratio)
        {
            options = options with { BackgroundRatio = ratio };
        }

        if (cache?.MaxDirtyAgeSeconds is { } seconds)
        {
            options = options with { MaxDirtyAge = Seconds("cache.maxDirtyAgeSeconds", seconds) };
        }

        return options.Problem() is { } problem ? throw new FormatException($"cache: {problem}") : options;
    }

    /// <summary>The NBD server's defaults changed by the <c>limits</c> section.</summary>
    private static NbdServerOptions ReadLimits(LimitsSection? limits)
    {
        var options = new NbdServerOptions();
        if (limits?.HandshakeSeconds is { } seconds)
        {
            options = options with { HandshakeTimeout = Seconds("limits.handshakeSeconds", seconds) };
        }

        if (limits?.PayloadStallSeconds is { } stall)
        {
            options = options with { PayloadStallTimeout = Seconds("limits.payloadStallSeconds", stall) };
        }

        if (limits?.ReplyStallSeconds is { } replyStall)
        {
            options = options with { ReplyStallTimeout = Seconds("limits.replyStallSeconds", replyStall) };
        }

        if (limits?.MinTransferRate is { } rate)
        {
            long bytes = Interpret("limits.minTransferRate", rate, ByteSize.Parse).Bytes;
            options = options with
            {
                MinTransferRate = bytes >= 1024 ? bytes : throw new FormatException($"limits.minTransferRate: expected at least 1K (bytes a second), not {rate}"),
            };
        }

        // 0 says "no idle limit" as plainly as leaving the key out.
        if (limits?.IdleSeconds is { } idle)
        {
            options = options with { IdleTimeout = idle == 0 ? null : Seconds("limits.idleSeconds", idle) };
        }

        if (limits?.Connections is { } connections)
        {
            options = options with { MaxConnections = Count("limits.connections", connections) };
        }

        // Not given, the per-client limit is the default or the total, whichever is lower.
        options = limits?.ConnectionsPerClient is { } perClient
            ? options with { MaxConnectionsPerClient = Count("limits.connectionsPerClient", perClient) }
            : options with { MaxConnectionsPerClient = Math.Min(options.MaxConnectionsPerClient, options.MaxConnections) };

        if (limits?.ConnectionMemory is { } memory)
        {
            long bytes = Interpret("limits.connectionMemory", memory, ByteSize.Parse).Bytes;
            options = options with
            {
                MaxInFlightBytes = bytes >= 1 << 20 ? bytes : throw new FormatException($"limits.connectionMemory: expected at least 1 MiB, not {memory}"),
            };
        }

        if (limits?.ClientMemory is { } clientMemory)
        {
            options = options with { MaxInFlightBytesPerClient = Interpret("limits.clientMemory", clientMemory, ByteSize.Parse).Bytes };
        }

        if (limits?.ServerMemory is { } serverMemory)
        {
            options = options with { MaxInFlightBytesInAll = Interpret("limits.serverMemory", serverMemory, ByteSize.Parse).Bytes };
        }

        if (options.MaxInFlightBytesPerClient < options.MaxInFlightBytes)
        {
            throw new FormatException($"limits: clientMemory ({options.MaxInFlightBytesPerClient} bytes) is below connectionMemory ({options.MaxInFlightBytes} bytes)");
        }

        if (options.MaxInFlightBytesInAll < options.MaxInFlightBytesPerClient)
        {
            throw new FormatException($"limits: serverMemory ({options.MaxInFlightBytesInAll} bytes) is below clientMemory ({options.MaxInFlightBytesPerClient} bytes)");
        }

        return options.MaxConnectionsPerClient > options.MaxConnections
            ? throw new FormatException($"limits: connectionsPerClient ({options.MaxConnectionsPerClient}) is above connections ({options.MaxConnections})")
            : options;
    }

    /// <summary>The <c>tls</c> section with its paths made absolute against <paramref name="directory"/>.</summary>
    private static TlsSettings ReadTls(TlsSection? tls, string directory)
    {
        string? PathOf(string key, string? text) => text is null ? null : Interpret($"tls.{key}", text, t => ConfigPaths.File(directory, t));
        return new TlsSettings(
            tls?.Mode is { } mode ? Interpret("tls.mode", mode, TlsSettings.ParseMode) : null,
            PathOf("cert", tls?.Cert),
            PathOf("key", tls?.Key),
            PathOf("ca", tls?.Ca));
    }

    private static int Count(string path, int value) =>
        value >= 1 ? value : throw new FormatException($"{path}: expected a whole number from 1, not {value}");

    /// <summary>Each string of the array <paramref name="key"/> through <paramref name="parse"/>; empty when the key is not there.</summary>
    private static IReadOnlyList<T> Each<T>(string key, IReadOnlyList<string?>? items, Func<string, T> parse) =>
        items is null ? [] : [.. items.Select((text, i) => Interpret($"{key}[{i}]",
            text ?? throw new FormatException($"{key}[{i}]: expected {ConfigErrors.Expected(typeof(string))}, not null"), parse))];

    /// <summary>Runs <paramref name="parse"/>, putting the key's path before what it says is wrong.</summary>
    private static T Interpret<T>(string path, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// A number of seconds, checked here rather than left to the options: a negative one could
    /// land on <see cref="Timeout.InfiniteTimeSpan"/> (-1 ms), which options read as "never",
    /// and a huge one would overflow a <see cref="TimeSpan"/>.
    /// </summary>
    private static TimeSpan Seconds(string path, double seconds) =>
        seconds is > 0 and <= int.MaxValue
            ? TimeSpan.FromSeconds(seconds)
            : throw new FormatException($"{path}: expected a positive number of seconds (at most {int.MaxValue}), not {seconds}");

    /// <summary>The reader's reason without its zero-based "LineNumber: 0 | BytePositionInLine: 3", told one-based instead.</summary>
    private static string JsonProblem(JsonException e)
    {
        string reason = e.Message;
        int position = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (position > 0)
        {
            reason = reason[..position];
        }

        return e.LineNumber is { } line ? $"line {line + 1}: {reason}" : reason;
    }
}
