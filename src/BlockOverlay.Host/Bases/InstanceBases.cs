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

    public static async Task<IReadOnlyList<Row>> ReadAsync(string storePath)
    {
        InstanceResponse response;
        try
        {
            response = await InstanceClient.RunAsync(storePath, new ListRequest());
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } reason)
        {
            throw new IOException($"cannot list the instances of {storePath}: {reason}", e);
        }

        return response switch
        {
            InstanceList list => [.. list.Instances.Select(i => new Row(i.Name, i.Base))],
            CommandFailed failed => throw new IOException($"cannot list the instances of {storePath}: {failed.Message}"),
            RequestRefused refused => throw new IOException($"cannot list the instances of {storePath}: bad control request: {refused.Message}"),
            _ => throw new IOException($"cannot list the instances of {storePath}: the server answered a list with '{response.GetType().Name}'"),
        };
    }
}
