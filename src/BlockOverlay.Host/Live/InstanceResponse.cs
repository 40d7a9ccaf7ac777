using System.Text.Json.Serialization;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host.Live;

/// <summary>
/// One line the control socket sends back: progress reports of a long command, then its
/// answer, an <see cref="InstanceResponse"/>. What a command says is data here; the CLI
/// words it (<see cref="InstanceText"/>), the same way whether a server answered or not.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "reply")]
[JsonDerivedType(typeof(ProgressReport), "progress")]
[JsonDerivedType(typeof(InstanceCreated), "created")]
[JsonDerivedType(typeof(InstanceDeleted), "deleted")]
[JsonDerivedType(typeof(InstanceList), "list")]
[JsonDerivedType(typeof(InstanceStat), "stat")]
[JsonDerivedType(typeof(InstanceChanged), "changed")]
[JsonDerivedType(typeof(InstanceCommitted), "committed")]
[JsonDerivedType(typeof(InstanceCloned), "cloned")]
[JsonDerivedType(typeof(CommandFailed), "failed")]
[JsonDerivedType(typeof(RequestRefused), "refused")]
[JsonDerivedType(typeof(InternalError), "bug")]
internal abstract record ControlReply;

/// <summary>How far a long command (commit, clone) has come, in bytes.</summary>
internal sealed record ProgressReport(long Done, long Total) : ControlReply;

/// <summary>The answer to a command: what it did, or why it did nothing.</summary>
internal abstract record InstanceResponse : ControlReply
{
    /// <summary>The CLI's exit code for it: 0 done, 1 failed, 2 not understood, 70 a bug (<see cref="CommandErrors"/>).</summary>
    [JsonIgnore]
    public int ExitCode => this switch
    {
        CommandFailed => CommandErrors.Refused,
        RequestRefused => 2,
        InternalError => CommandErrors.Bug,
        _ => 0,
    };
}

/// <param name="Allow">The access rules (empty: everyone).</param>
/// <param name="IopsLimit">Requests per second (0: no limit).</param>
/// <param name="BpsLimit">Bytes per second (0: no limit).</param>
internal sealed record InstanceCreated(string Name, long Size, string? Base, string FlushMode, long Quota, IReadOnlyList<string> Allow,
    long IopsLimit = 0, long BpsLimit = 0, int Weight = InstanceQos.DefaultWeight) : InstanceResponse;

internal sealed record InstanceDeleted(string Name) : InstanceResponse;

internal sealed record InstanceList(IReadOnlyList<InstanceSummary> Instances) : InstanceResponse;

/// <summary>One instance of a list (bytes).</summary>
internal sealed record InstanceSummary(string Name, long VirtualSize, long UpperBytes, string FlushMode, bool Unclean, string? Base);

/// <summary>
/// What <c>set</c> changed: the flush mode, the quota (0: none), the access rules (empty: everyone),
/// the limits (requests and bytes per second, 0: none) and the weight; null: unchanged.
/// </summary>
internal sealed record InstanceChanged(string Name, string? FlushMode, long? Quota, IReadOnlyList<string>? Allow,
    long? IopsLimit = null, long? BpsLimit = null, int? Weight = null) : InstanceResponse;

internal sealed record InstanceCommitted(string Name, string Output, long Size) : InstanceResponse;

internal sealed record InstanceCloned(string Name, string Target, long CopiedBytes) : InstanceResponse;

/// <summary>The command failed and changed nothing.</summary>
internal sealed record CommandFailed(string Message) : InstanceResponse;

/// <summary>
/// The command hit a bug in the server (<see cref="OperatorFailures"/> had no message for what
/// it threw). The server logged it with its stack trace; this says what and where to look.
/// </summary>
internal sealed record InternalError(string Message) : InstanceResponse;

/// <summary>The control socket could not read a request (not JSON, not a known command, a field missing).</summary>
internal sealed record RequestRefused(string Message) : InstanceResponse;

/// <summary>
/// Source-generated JSON for the control protocol (no reflection at run time, so it trims
/// and compiles ahead of time). Strict: an unknown field or a missing one is an error, so a
/// client and a server that disagree say so instead of guessing.
/// </summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    RespectNullableAnnotations = true,
    RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(InstanceRequest))]
[JsonSerializable(typeof(ControlReply))]
[JsonSerializable(typeof(InstanceStat))]
internal sealed partial class ControlJson : JsonSerializerContext;
