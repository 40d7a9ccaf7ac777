using System.Net;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Config;

/// <summary>The command line of <c>blockoverlay serve</c> as given: null or empty means the flag was not given.</summary>
internal sealed record ServeFlags
{
    public string? Config { get; init; }

    public string? Store { get; init; }

    public IReadOnlyList<string> Exports { get; init; } = [];

    public IReadOnlyList<string> Listen { get; init; } = [];

    public string? SocketMode { get; init; }

    public bool Stdio { get; init; }

    public string? Metrics { get; init; }

    public bool Verbose { get; init; }

    public string? LogLevel { get; init; }

    public string? LogFormat { get; init; }

    public string? Tls { get; init; }

    public string? TlsCert { get; init; }

    public string? TlsKey { get; init; }

    public string? TlsCa { get; init; }

    public string? IoBackend { get; init; }
}

/// <summary>
/// What <c>serve</c> runs with. Each setting comes from its flag when given, else from the
/// config, else from the default: a flag replaces the config's key whole (<c>--listen</c>
/// replaces the config's list rather than adding to it), so what the command line says is
/// exactly what happens for that key.
/// </summary>
/// <remarks>
/// The log level: <c>--log-level</c>, or <c>-v</c> (debug), else the config, else
/// information. Where to listen depends also on sockets inherited from systemd, which are
/// only known when serving starts: see <see cref="AddressesBeside"/>.
/// </remarks>
internal sealed record ServeSettings
{
    /// <summary>Served with --stdio when nothing else is: neither a store nor an export, from flags or config.</summary>
    public const string DemoExport = "demo=memory:1G";

    /// <summary>Where the embedded default keeps its demo store, relative to the working directory (make run's var/).</summary>
    public const string DemoDirectory = "var";

    /// <summary>
    /// The embedded default: no store, no export and no --stdio, from flags or config. Then
    /// serve makes the demo store in <see cref="DemoDirectory"/> if it is not there and serves it.
    /// </summary>
    public bool Demo { get; init; }

    public string? Store { get; init; }

    public IReadOnlyList<ExportSpec> Exports { get; init; } = [];

    /// <summary><c>--listen</c> addresses.</summary>
    public IReadOnlyList<ListenAddress> CommandLineListen { get; init; } = [];

    /// <summary>The config's <c>listen</c> addresses.</summary>
    public IReadOnlyList<ListenAddress> ConfigListen { get; init; } = [];

    public bool Stdio { get; init; }

    public IPEndPoint? Metrics { get; init; }

    public CacheOptions Cache { get; init; } = new();

    /// <summary>The NBD server's limits (the config's <c>limits</c>; no flags) and the mode of its unix sockets (<c>--socket-mode</c>, else <c>socketMode</c>).</summary>
    public NbdServerOptions Limits { get; init; } = new();

    /// <summary>The <c>--tls</c> flags over the config's <c>tls</c> keys; checked, its files not read yet.</summary>
    public TlsSettings Tls { get; init; } = new();

    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    public LogFormat LogFormat { get; init; } = LogFormat.Text;

    /// <summary>How a store file is read and written: <c>--io-backend</c>, else the config's <c>ioBackend</c>, else auto.</summary>
    public IoBackend IoBackend { get; init; } = IoBackend.Auto;

    /// <summary>Flags over config over defaults; throws <see cref="FormatException"/> naming the first bad value.</summary>
    public static ServeSettings Resolve(ServeFlags flags, HostConfig? config)
    {
        ArgumentNullException.ThrowIfNull(flags);
        if (flags.Stdio && flags.Listen.Count > 0)
        {
            throw new FormatException("--stdio serves standard input and output; it cannot be combined with --listen");
        }

        string? store = string.IsNullOrEmpty(flags.Store) ? config?.Store : flags.Store;
        var exports = flags.Exports.Count > 0 ? [.. flags.Exports.Select(e => Flag("--export", e, ExportSpec.Parse))] : config?.Exports ?? [];
        bool nothingToServe = store is null && exports.Count == 0;
        return new ServeSettings
        {
            Store = store,
            Demo = nothingToServe && !flags.Stdio,
            Exports = nothingToServe && flags.Stdio ? [ExportSpec.Parse(DemoExport)] : exports,
            CommandLineListen = [.. flags.Listen.Select(l => Flag("--listen", l, ListenAddress.Parse))],
            ConfigListen = config?.Listen ?? [],
            Stdio = flags.Stdio,
            Metrics = flags.Metrics is { } metrics ? Flag("--metrics", metrics, MetricsEndpoint.ParseAddress) : config?.Metrics,
            Cache = config?.Cache ?? new CacheOptions(),
            Limits = (config?.Limits ?? new NbdServerOptions()) with
            {
                UnixSocketMode = string.IsNullOrEmpty(flags.SocketMode)
                    ? config?.SocketMode ?? NbdServerOptions.DefaultUnixSocketMode
                    : Flag("--socket-mode", flags.SocketMode, NbdServerOptions.ParseSocketMode),
            },
            Tls = new TlsSettings(
                string.IsNullOrEmpty(flags.Tls) ? null : Flag("--tls", flags.Tls, TlsSettings.ParseMode),
                NullIfEmpty(flags.TlsCert),
                NullIfEmpty(flags.TlsKey),
                NullIfEmpty(flags.TlsCa)).Over(config?.Tls ?? new TlsSettings()).Checked(),
            LogLevel = ResolveLevel(flags) ?? config?.LogLevel ?? LogLevel.Information,
            LogFormat = flags.LogFormat is { } format ? Flag("--log-format", format, LogChoices.ParseFormat) : config?.LogFormat ?? LogFormat.Text,
            IoBackend = string.IsNullOrEmpty(flags.IoBackend) ? config?.IoBackend ?? IoBackend.Auto : Flag("--io-backend", flags.IoBackend, IoBackends.Parse),
        };
    }

    /// <summary>
    /// The addresses to bind beside <paramref name="inheritedSockets"/> sockets from systemd:
    /// the command line's always (as before configs existed); the config's only when systemd
    /// handed none, since under socket activation the socket unit says where to listen and the
    /// same config must work with and without it; the default only when there is nothing else.
    /// </summary>
    public IReadOnlyList<ListenAddress> AddressesBeside(int inheritedSockets) =>
        CommandLineListen.Count > 0 ? CommandLineListen
        : inheritedSockets > 0 ? []
        : ConfigListen.Count > 0 ? ConfigListen
        : Demo ? [ListenAddress.Parse($"unix:{DemoDirectory}/blockoverlay.sock"), ListenAddress.Parse($"tcp:127.0.0.1:{ListenAddress.DefaultPort}")]
        : [ListenAddress.Parse($"tcp:127.0.0.1:{ListenAddress.DefaultPort}")];

    /// <summary><c>--log-level</c>, or <c>-v</c>; both at once would leave the reader guessing which wins.</summary>
    private static LogLevel? ResolveLevel(ServeFlags flags) =>
        (flags.LogLevel, flags.Verbose) switch
        {
            ({ }, true) => throw new FormatException("give --verbose or --log-level, not both"),
            ({ } level, false) => Flag("--log-level", level, LogChoices.ParseLevel),
            (null, true) => LogLevel.Debug,
            (null, false) => null,
        };

    private static string? NullIfEmpty(string? text) => string.IsNullOrEmpty(text) ? null : text;

    /// <summary>Parses a flag's value, naming the flag before what is wrong (as config errors name the key).</summary>
    private static T Flag<T>(string flag, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{flag}: {e.Message}", e);
        }
    }
}
