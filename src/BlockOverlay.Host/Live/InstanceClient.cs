namespace BlockOverlay.Host.Live;

/// <summary>
/// The CLI's way to carry out an instance command: through the server holding the store if
/// one answers, else on the store file. The answer is the same record either way.
/// </summary>
internal static class InstanceClient
{
    public static async Task<InstanceResponse> RunAsync(string storePath, InstanceRequest request, Action<ProgressReport>? progress = null) =>
        ControlClient.TrySend(storePath, request, progress) ?? await OfflineAsync(storePath, request, progress);

    private static async Task<InstanceResponse> OfflineAsync(string storePath, InstanceRequest request, Action<ProgressReport>? progress)
    {
        await using var session = await StoreSession.OpenAsync(storePath);
        return await InstanceOperations.RunAsync(request, session.Store, live: null, progress);
    }
}
