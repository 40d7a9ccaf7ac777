using System.Globalization;
using System.Text;
using System.Text.Json;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host.Live;

/// <summary>What a command prints and its exit code.</summary>
internal sealed record CommandOutcome(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// The CLI's words for an <see cref="InstanceResponse"/>: the one place the answers of the
/// instance commands become text, whether a server or the store file answered.
/// </summary>
internal static class InstanceText
{
    public static CommandOutcome Render(InstanceRequest request, InstanceResponse response, bool json = false) => response switch
    {
        CommandFailed failed => new(failed.ExitCode, "", $"blockoverlay instance {request.Command}: {failed.Message}\n"),
        RequestRefused refused => new(refused.ExitCode, "", $"blockoverlay: bad control request: {refused.Message}\n"),
        InternalError bug => new(bug.ExitCode, "", $"blockoverlay instance {request.Command}: internal error in the server, a bug " +
                                                   $"(its log has the stack trace; please report it): {bug.Message}\n"),
        InstanceStat stat => Ok(json ? JsonSerializer.Serialize(stat, ControlJson.Default.InstanceStat) + "\n" : Stat(stat)),
        InstanceList list => Ok(List(list)),
        InstanceCreated c => Ok($"created instance '{c.Name}' ({new ByteSize(c.Size)}{(c.Base is null ? "" : $" over {c.Base}")}, flush mode {c.FlushMode}" +
                                (c.Quota == 0 ? "" : $", quota {new ByteSize(c.Quota)}") + (c.Allow.Count == 0 ? "" : $", allowed {Allowed(c.Allow)}") +
                                (c.IopsLimit == 0 ? "" : $", {c.IopsLimit} I/O per second") + (c.BpsLimit == 0 ? "" : $", {new ByteSize(c.BpsLimit)} per second") +
                                (c.Weight == InstanceQos.DefaultWeight ? "" : $", weight {c.Weight}") + ")\n"),
        InstanceDeleted d => Ok($"deleted instance '{d.Name}'\n"),
        InstanceChanged c => Ok($"instance '{c.Name}': {Changes(c)}\n"),
        InstanceCommitted c => Ok($"committed instance '{c.Name}' to {c.Output} ({new ByteSize(c.Size)}): a raw image, usable as a base\n"),
        InstanceCloned c => Ok($"cloned instance '{c.Name}' to '{c.Target}' ({new ByteSize(c.CopiedBytes)} of upper data copied; base shared)\n"),
        _ => throw new ArgumentOutOfRangeException(nameof(response), response, "an answer the CLI cannot word"),
    };

    private static CommandOutcome Ok(string stdout) => new(0, stdout, "");

    /// <summary>One line per instance: name, virtual size, upper data, flush mode, base ("-" for none), tab-separated.</summary>
    private static string List(InstanceList list)
    {
        var text = new StringBuilder();
        foreach (var i in list.Instances)
        {
            text.Append(CultureInfo.InvariantCulture,
                $"{i.Name}\t{new ByteSize(i.VirtualSize)}\t{new ByteSize(i.UpperBytes)}\t{i.FlushMode}{(i.Unclean ? ",unclean" : "")}\t{i.Base ?? "-"}\n");
        }

        return text.ToString();
    }

    private static string Changes(InstanceChanged changed)
    {
        var said = new List<string>();
        if (changed.FlushMode is { } mode)
        {
            said.Add($"flush mode {mode}");
        }

        if (changed.Quota is { } quota)
        {
            said.Add(quota == 0 ? "no quota" : $"quota {new ByteSize(quota)}");
        }

        if (changed.Allow is { } allow)
        {
            said.Add($"allowed {Allowed(allow)}");
        }

        if (changed.IopsLimit is { } iops)
        {
            said.Add(iops == 0 ? "no I/O rate limit" : $"{iops} I/O per second");
        }

        if (changed.BpsLimit is { } bps)
        {
            said.Add(bps == 0 ? "no byte rate limit" : $"{new ByteSize(bps)} per second");
        }

        if (changed.Weight is { } weight)
        {
            said.Add($"weight {weight}");
        }

        return string.Join(", ", said);
    }

    /// <summary>Access rules for people: "everyone" when there are none; "; " between rules (a subject may hold commas).</summary>
    private static string Allowed(IReadOnlyList<string> rules) => rules.Count == 0 ? "everyone" : string.Join("; ", rules);

    /// <summary>One "key: value" line per field, for people.</summary>
    private static string Stat(InstanceStat s) => string.Join('\n',
        $"name: {s.Name}",
        $"size: {s.VirtualSize}",
        $"base: {s.Base ?? "-"}",
        $"flush mode: {s.FlushMode}{(s.Unclean ? " (unclean: crashed while volatile)" : "")}",
        $"quota: {(s.Quota == 0 ? "none" : s.Quota.ToString(CultureInfo.InvariantCulture))}",
        $"quota used: {s.QuotaUsedBytes} (upper bytes and dirty new space)",
        $"allowed: {Allowed(s.Allow)}",
        $"iops limit: {(s.IopsLimit == 0 ? "none" : $"{s.IopsLimit} per second")}",
        $"bps limit: {(s.BpsLimit == 0 ? "none" : $"{s.BpsLimit} bytes per second")}",
        $"weight: {s.Weight}",
        $"upper bytes: {s.UpperBytes}",
        $"extents: {s.Extents}",
        $"served: {(s.Served ? $"yes, {s.Connections} connection(s)" : "no")}",
        $"dirty bytes: {s.DirtyBytes}",
        $"flushes: {s.Flushes}",
        $"flush bytes: data {s.FlushDataBytes}, meta {s.FlushMetaBytes}",
        $"flush time: {s.FlushSeconds:F6} s",
        $"written back: {s.WriteBackBytes}",
        $"throttled: {s.ThrottledSeconds:F6} s",
        $"waited on limits: {s.LimitWaitSeconds:F6} s ({s.LimitWaits} requests)") + "\n";
}
