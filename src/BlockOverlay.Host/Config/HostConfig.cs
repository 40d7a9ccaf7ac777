using System.Net;
using System.Text.Json;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Nbd.Listeners;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Config;

/// <summary>
/// What a config file says: the store, listeners, metrics address, plain exports, cache
/// limits and logging of <c>blockoverlay serve</c> (and the store of the <c>instance</c>
/// commands). Command-line flags override it key by key (<see cref="ServeSettings"/>).
/// </summary>
/// <remarks>
/// <para><b>Why JSON.</b> System.Text.Json is part of .NET, so a config costs no new
/// dependency (TOML would need a third-party parser). Comments (<c>//</c>, <c>/* */</c>) and
/// trailing commas are accepted, which takes away most of what makes JSON tiresome to edit
/// by hand.</para>
/// <para><b>Strict.</b> An unknown key is an error naming it (a misspelt limit must not
/// silently fall back to the default), values are parsed here with the command line's own
/// parsers, and the cache limits are checked with <see cref="CacheOptions.Problem"/>, so a
/// config that loads is one the server can run with.</para>
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

    private static readonly string[] s_keys = ["store", "listen", "metrics", "exports", "cache", "log"];
    private static readonly string[] s_cacheKeys = ["globalDirtyLimit", "instanceDirtyLimit", "backgroundRatio", "maxDirtyAgeSeconds"];
    private static readonly string[] s_logKeys = ["level", "format"];

    private static readonly JsonDocumentOptions s_json = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>The file, as an absolute path.</summary>
    public required string FilePath { get; init; }

    /// <summary>The store file (absolute), or null.</summary>
    public string? Store { get; init; }

    public IReadOnlyList<ListenAddress> Listen { get; init; } = [];

    public IPEndPoint? Metrics { get; init; }

    public IReadOnlyList<ExportSpec> Exports { get; init; } = [];

    /// <summary>The defaults with whatever the file's <c>cache</c> changes; always valid.</summary>
    public CacheOptions Cache { get; init; } = new();

    public LogLevel? LogLevel { get; init; }

    public LogFormat? LogFormat { get; init; }

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
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FormatException($"config {fullPath}: cannot read it: {e.Message}", e);
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
    public static HostConfig Parse(string json, string filePath)
    {
        string directory = Path.GetDirectoryName(filePath) ?? "/";
        using var document = JsonDocument.Parse(json, s_json);
        var top = ConfigSection.Read(document.RootElement, "", s_keys);
        var log = top.Section("log", s_logKeys);
        return new HostConfig
        {
            FilePath = filePath,
            Store = top.TryRead("store", text => ConfigPaths.File(directory, text), out string? store) ? store : null,
            Listen = top.ReadEach("listen", text => ListenAddress.Parse(ConfigPaths.Listen(directory, text))),
            Metrics = top.TryRead("metrics", MetricsEndpoint.ParseAddress, out var metrics) ? metrics : null,
            Exports = top.ReadEach("exports", text => ConfigPaths.Export(directory, ExportSpec.Parse(text))),
            Cache = ReadCache(top.Section("cache", s_cacheKeys)),
            LogLevel = log is not null && log.TryRead("level", LogChoices.ParseLevel, out var level) ? level : null,
            LogFormat = log is not null && log.TryRead("format", LogChoices.ParseFormat, out var format) ? format : null,
        };
    }

    /// <summary>The defaults changed by the <c>cache</c> section; throws when the result is not a valid combination.</summary>
    private static CacheOptions ReadCache(ConfigSection? cache)
    {
        var options = new CacheOptions();
        if (cache is not null)
        {
            if (cache.TryRead("globalDirtyLimit", ByteSize.Parse, out var global))
            {
                options = options with { GlobalDirtyLimit = global.Bytes };
            }

            if (cache.TryRead("instanceDirtyLimit", ByteSize.Parse, out var instance))
            {
                options = options with { InstanceDirtyLimit = instance.Bytes };
            }

            if (cache.TryNumber("backgroundRatio", out double ratio))
            {
                options = options with { BackgroundRatio = ratio };
            }

            if (cache.TryNumber("maxDirtyAgeSeconds", out double seconds))
            {
                options = options with { MaxDirtyAge = DirtyAge(cache.PathOf("maxDirtyAgeSeconds"), seconds) };
            }
        }

        return options.Problem() is { } problem ? throw new FormatException($"cache: {problem}") : options;
    }

    /// <summary>
    /// Checked here rather than left to <see cref="CacheOptions.Problem"/>: a negative number
    /// of seconds could land on <see cref="Timeout.InfiniteTimeSpan"/> (-1 ms), which the
    /// options read as "never", and a huge one would overflow a <see cref="TimeSpan"/>.
    /// </summary>
    private static TimeSpan DirtyAge(string path, double seconds) =>
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
