using System.Net.Sockets;
using System.Text.Json;
using BlockOverlay.Host.Live;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// Which base image each instance of a store is made on, found the way <c>instance list</c>
/// finds it: through the control socket when a server holds the store, else by opening the
/// store. Reusing that command keeps "in use" meaning exactly what <c>instance list</c> shows.
/// </summary>
internal static class InstanceBases
{
    /// <summary>One row of <c>instance list</c>: the instance and its base path, null when it is over zeros.</summary>
    public sealed record Row(string Instance, string? BasePath);

    private const string ListPrefix = "blockoverlay instance list: ";

    public static async Task<IReadOnlyList<Row>> ReadAsync(string storePath)
    {
        var request = new InstanceRequest { Command = "list" };
        CommandOutcome outcome;
        try
        {
            outcome = await ControlClient.TrySendAsync(storePath, request) ?? await OfflineAsync(storePath, request);
        }
        catch (Exception e) when (e is SocketException or JsonException)
        {
            throw new IOException($"cannot list the instances of {storePath}: {e.Message}", e);
        }

        if (outcome.ExitCode != 0)
        {
            string reason = outcome.Stderr.Trim();
            throw new IOException($"cannot list the instances of {storePath}: {(reason.StartsWith(ListPrefix, StringComparison.Ordinal) ? reason[ListPrefix.Length..] : reason)}");
        }

        return [.. outcome.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(Parse)];
    }

    /// <summary>The columns are name, size, upper data, flush mode, base path ("-" for none); a path may hold tabs.</summary>
    private static Row Parse(string line)
    {
        string[] columns = line.Split('\t', 5);
        return columns.Length == 5
            ? new Row(columns[0], columns[4] == "-" ? null : columns[4])
            : throw new IOException($"unexpected line in the instance list: '{line}'");
    }

    /// <summary>What <c>instance list</c> does when no server holds the store (InstanceCommands keeps its own copy private).</summary>
    private static async Task<CommandOutcome> OfflineAsync(string storePath, InstanceRequest request)
    {
        await using var session = await StoreSession.OpenAsync(storePath);
        return await InstanceOperations.RunAsync(request, session.Store, live: null);
    }
}
