using System.Text.Json.Serialization;

namespace BlockOverlay.Host.Live;

/// <summary>
/// One instance command, as the CLI parsed it: the same record is carried out offline on a
/// store file or sent to a running server's control socket, so both give the same answer.
/// Paths in it are absolute (the server's working directory is not the caller's).
/// </summary>
internal sealed record InstanceRequest
{
    public required string Command { get; init; }
    public string? Name { get; init; }
    public string? Base { get; init; }
    public string? Size { get; init; }
    public string? FlushMode { get; init; }
    public string? Quota { get; init; }

    /// <summary>What the command makes: the image <c>commit</c> writes, the instance <c>clone</c> creates.</summary>
    public string? Target { get; init; }
    public bool Force { get; init; }
    public bool Json { get; init; }

    /// <summary>The instances the command acts on (a live server lets one command at a time act on each).</summary>
    [JsonIgnore]
    public IEnumerable<string> InstanceNames => Command switch
    {
        "list" or "stat" => [],  // readers: a long commit of an instance must not hold up its stat
        "clone" => new[] { Name, Target }.OfType<string>(),
        _ => new[] { Name }.OfType<string>(),
    };
}

/// <summary>How far a long command (commit, clone) has come, in bytes.</summary>
internal sealed record ProgressReport(long Done, long Total);

/// <summary>One line of the control socket's answer: progress reports, then the outcome.</summary>
internal sealed record ControlAnswer(ProgressReport? Progress, CommandOutcome? Outcome);

/// <summary>What a command prints and its exit code.</summary>
internal sealed record CommandOutcome(int ExitCode, string Stdout, string Stderr)
{
    public static CommandOutcome Ok(string stdout) => new(0, stdout, "");

    public static CommandOutcome Failed(string command, string message) => new(1, "", $"blockoverlay instance {command}: {message}\n");
}

/// <summary>Source-generated JSON for the control protocol (no reflection at run time).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(InstanceRequest))]
[JsonSerializable(typeof(CommandOutcome))]
[JsonSerializable(typeof(ControlAnswer))]
[JsonSerializable(typeof(InstanceStat))]
internal sealed partial class ControlJson : JsonSerializerContext;
