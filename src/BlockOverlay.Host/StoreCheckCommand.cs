using System.CommandLine;
using System.Text.Json;
using BlockOverlay.Store.Checking;

namespace BlockOverlay.Host;

/// <summary>
/// <c>blockoverlay store check PATH [--repair] [--json]</c>: runs the store checker
/// (<see cref="StoreChecker"/>) on a store no server holds, and prints its report in lines for
/// people or as one JSON object (<see cref="CheckOutput"/>).
/// </summary>
/// <remarks>
/// A check opens a store file read-only under a shared lock (a server holds an exclusive one, so
/// the check is refused while a server has the store); <c>--repair</c> opens it for writing, as a
/// server would. An <c>rbd:</c> store is opened under the image's exclusive lock either way.
/// Exit codes: 0 the store is clean (after <c>--repair</c>: nothing is left), <see cref="ProblemsLeft"/>
/// problems are left; a store that cannot be read at all is refused as every command refuses (1).
/// </remarks>
internal static class StoreCheckCommand
{
    /// <summary>The exit code when the check found problems (that a repair did not fix).</summary>
    public const int ProblemsLeft = 3;

    public static Command Create()
    {
        var path = new Argument<string>("PATH") { Description = "The store file, or rbd:POOL/IMAGE (no server may hold it)." };
        var repair = new Option<bool>("--repair") { Description = "Fix what can be fixed without guessing, say what was done, and check again." };
        var json = new Option<bool>("--json") { Description = "One JSON object instead of lines for people." };
        var check = new Command("check", "Verify a whole store: superblocks, journal, checkpoint, definitions, every map against free space.")
        {
            path, repair, json,
        };
        check.SetAction(async (parse, _) =>
        {
            string store = parse.GetValue(path)!;
            bool repairing = parse.GetValue(repair);
            await using var device = await StoreDevices.OpenAsync(store, readOnly: !repairing);
            CheckOutput output;
            if (repairing)
            {
                var repaired = await StoreChecker.RepairAsync(device);
                output = CheckOutput.Of(StoreDevices.Describe(store), repaired.Found, repaired);
            }
            else
            {
                output = CheckOutput.Of(StoreDevices.Describe(store), await StoreChecker.CheckAsync(device), null);
            }

            Console.Write(parse.GetValue(json) ? JsonSerializer.Serialize(output, CheckJson.Default.CheckOutput) + Environment.NewLine : output.Text());
            return output.Left == 0 ? 0 : ProblemsLeft;
        });
        return check;
    }
}
