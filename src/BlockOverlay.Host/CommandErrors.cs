using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host;

/// <summary>
/// Turns the errors a command can meet into one line on standard error and exit code 1,
/// so scripts can rely on 0 meaning done and anything else meaning nothing was half-done.
/// </summary>
internal static class CommandErrors
{
    public static async Task<int> RunAsync(string command, Func<Task<int>> body)
    {
        try
        {
            return await body();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException
                                       or StoreFormatException or InstanceException or BaseImageChangedException or ExportException)
        {
            await Console.Error.WriteLineAsync($"blockoverlay {command}: {e.Message}");
            return 1;
        }
    }
}
