using System.Text.Json.Serialization;

namespace BlockOverlay.Host.Live;

/// <summary>
/// One instance command, as the CLI parsed it: the same record is carried out offline on a
/// store file or sent to a running server's control socket, so both give the same answer
/// (an <see cref="InstanceResponse"/>). Values are kept as the user wrote them (sizes, flush
/// modes) and parsed where they are applied, so one rule judges them either way. Paths in it
/// are absolute (the server's working directory is not the caller's).
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "command")]
[JsonDerivedType(typeof(CreateRequest), "create")]
[JsonDerivedType(typeof(DeleteRequest), "delete")]
[JsonDerivedType(typeof(ListRequest), "list")]
[JsonDerivedType(typeof(StatRequest), "stat")]
[JsonDerivedType(typeof(SetRequest), "set")]
[JsonDerivedType(typeof(CommitRequest), "commit")]
[JsonDerivedType(typeof(CloneRequest), "clone")]
internal abstract record InstanceRequest([property: JsonIgnore] string Command)
{
    /// <summary>The instances the command acts on (a live server lets one command at a time act on each).</summary>
    public virtual IEnumerable<string> InstanceNames() => [];
}

/// <summary>A command on one named instance.</summary>
internal abstract record NamedRequest(string Command, string Name) : InstanceRequest(Command)
{
    public override IEnumerable<string> InstanceNames() => [Name];
}

/// <param name="Allow">Access rules as written (<c>uid:N</c>, <c>gid:N</c>, <c>cert:SUBJECT</c>); none: open to everyone.</param>
/// <param name="IopsLimit">Requests per second as written (a count, or none); null: no limit.</param>
/// <param name="BpsLimit">Bytes per second as written (a size such as 64M, or none); null: no limit.</param>
/// <param name="Weight">The instance's share as written (1 to 10000); null: the default, 100.</param>
internal sealed record CreateRequest(string Name, string? Base, string? Size, string? FlushMode, string? Quota, IReadOnlyList<string> Allow,
    string? IopsLimit = null, string? BpsLimit = null, string? Weight = null)
    : NamedRequest("create", Name);

internal sealed record DeleteRequest(string Name, bool Force) : NamedRequest("delete", Name);

/// <summary>A reader: a long commit of an instance must not hold up the list.</summary>
internal sealed record ListRequest() : InstanceRequest("list");

/// <summary>A reader, like <see cref="ListRequest"/> (whether it prints JSON is the CLI's choice, not the server's).</summary>
internal sealed record StatRequest(string Name) : NamedRequest("stat", Name)
{
    public override IEnumerable<string> InstanceNames() => [];
}

/// <param name="Allow">New access rules, replacing the old ones; empty leaves them.</param>
/// <param name="AllowAll">Drop every rule: open to everyone.</param>
/// <param name="IopsLimit">A new request rate limit as written (none or 0: no limit); null leaves it.</param>
/// <param name="BpsLimit">A new byte rate limit as written (none or 0: no limit); null leaves it.</param>
/// <param name="Weight">A new weight as written; null leaves it.</param>
internal sealed record SetRequest(string Name, string? FlushMode, string? Quota, IReadOnlyList<string> Allow, bool AllowAll,
    string? IopsLimit = null, string? BpsLimit = null, string? Weight = null)
    : NamedRequest("set", Name);

/// <summary>Writes the instance's view to <paramref name="Target"/>, a new raw image.</summary>
internal sealed record CommitRequest(string Name, string Target) : NamedRequest("commit", Name);

/// <summary>Makes <paramref name="Target"/>, a new instance, from the instance's flushed view.</summary>
internal sealed record CloneRequest(string Name, string Target) : NamedRequest("clone", Name)
{
    public override IEnumerable<string> InstanceNames() => [Name, Target];
}
