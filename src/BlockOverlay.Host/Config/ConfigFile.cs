using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockOverlay.Host.Config;

/// <summary>
/// The config file's JSON as written, before any value is interpreted (<see cref="HostConfig"/>
/// does that). Each type's properties are the keys its object takes, in the order the
/// messages list them; any other key is an error (unmapped members disallowed), and so is a
/// key given twice. (A key given as <c>null</c> reads as not given; <see cref="HostConfig"/>
/// refuses it with <see cref="ConfigErrors.FirstNull"/>.)
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record ConfigFile
{
    public string? Store { get; init; }

    public IReadOnlyList<string?>? Listen { get; init; }

    public string? SocketMode { get; init; }

    public string? Metrics { get; init; }

    public IReadOnlyList<string?>? Exports { get; init; }

    public CacheSection? Cache { get; init; }

    public LimitsSection? Limits { get; init; }

    public TlsSection? Tls { get; init; }

    public LogSection? Log { get; init; }

    public string? IoBackend { get; init; }
}

/// <summary>The <c>cache</c> object: sizes as strings with binary units, the rest numbers.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record CacheSection
{
    public string? GlobalDirtyLimit { get; init; }

    public string? InstanceDirtyLimit { get; init; }

    public double? BackgroundRatio { get; init; }

    public double? MaxDirtyAgeSeconds { get; init; }
}

/// <summary>The <c>limits</c> object: what one client may hold of the server.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record LimitsSection
{
    public double? HandshakeSeconds { get; init; }

    public double? PayloadStallSeconds { get; init; }

    public double? ReplyStallSeconds { get; init; }

    public string? MinTransferRate { get; init; }

    public double? IdleSeconds { get; init; }

    public int? Connections { get; init; }

    public int? ConnectionsPerClient { get; init; }

    public string? ConnectionMemory { get; init; }

    public string? ClientMemory { get; init; }

    public string? ServerMemory { get; init; }
}

/// <summary>The <c>tls</c> object: the <c>--tls</c> flags' values (paths relative to the config's directory).</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record TlsSection
{
    public string? Mode { get; init; }

    public string? Cert { get; init; }

    public string? Key { get; init; }

    public string? Ca { get; init; }
}

/// <summary>The <c>log</c> object.</summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record LogSection
{
    public string? Level { get; init; }

    public string? Format { get; init; }
}

/// <summary>
/// The config's JSON, source-generated (no reflection: fit for trimming and Native AOT).
/// Comments and trailing commas are accepted, which takes away most of what makes JSON
/// tiresome to edit by hand; keys match case-sensitively.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(ConfigFile))]
internal sealed partial class ConfigJson : JsonSerializerContext
{
    /// <summary>The same reading rules for a <see cref="JsonDocument"/> of the file, which explains the serializer's errors.</summary>
    public static JsonDocumentOptions DocumentOptions => new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };
}
