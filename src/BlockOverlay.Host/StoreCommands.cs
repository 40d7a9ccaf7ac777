using System.CommandLine;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Io;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary><c>blockoverlay store …</c>: making a store.</summary>
internal static class StoreCommands
{
    public static Command Create()
    {
        var path = new Argument<string>("PATH") { Description = "The store file to create (it must not exist)." };
        var size = new Option<string>("--size") { Description = "Its size, as 64G or 1T (binary units).", Required = true };
        var create = new Command("create", "Create an empty store file, written through once so every later write is in place.") { path, size };
        create.SetAction((parse, _) => CommandErrors.RunAsync("store create", async () =>
        {
            string file = parse.GetValue(path)!;
            var bytes = ByteSize.Parse(parse.GetValue(size)!);
            await using (var device = await FileDevice.CreateAsync(file, bytes.Bytes))
            {
                await UpperStore.CreateAsync(device);
            }

            Console.WriteLine($"created store {Path.GetFullPath(file)} ({bytes})");
            return 0;
        }));

        return new Command("store", "Manage the upper extent store.") { create };
    }
}
