using System.CommandLine;
using BlockOverlay.Host.Bases;

namespace BlockOverlay.Host;

/// <summary>
/// <c>blockoverlay base …</c>: names for the raw images a store's instances are made on,
/// kept in a registry next to the store (see <see cref="BaseRegistry"/> for why there), so
/// <c>instance create --base NAME</c> need not spell out paths. Works the same whether or
/// not a server holds the store: the registry has its own lock.
/// </summary>
internal static class BaseCommands
{
    public static Command Create()
    {
        var store = new Option<string>("--store") { Description = "The store the bases are for (the registry is STORE.bases.json next to it).", Required = true };
        return new Command("base", "Name base images for a store's instances.")
        {
            AddCommand(store),
            ListCommand(store),
            RemoveCommand(store),
        };
    }

    private static Command AddCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The base's name (the same rules as instance names)." };
        var image = new Argument<string>("IMAGE") { Description = "A raw image file; with --import also an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH)." };
        var import = new Option<bool>("--import")
        {
            Description = "Copy the image to STORE.bases/NAME.raw (sparse, durable, all or nothing) instead of referring to it; " +
                          "a progress bar shows on standard error when it is a terminal.",
        };
        var command = new Command("add", "Register a raw image under a name.") { name, image, import, store };
        command.SetAction((parse, cancel) => PrintAsync(
            BaseOperations.AddAsync(parse.GetValue(store)!, parse.GetValue(name)!, parse.GetValue(image)!, parse.GetValue(import), cancel)));
        return command;
    }

    private static Command ListCommand(Option<string> store)
    {
        var command = new Command("list", "List bases: name, size, path, number of instances made on it.") { store };
        command.SetAction((parse, _) => PrintAsync(BaseOperations.ListAsync(parse.GetValue(store)!)));
        return command;
    }

    private static Command RemoveCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The base to forget (its file is deleted only if it was imported)." };
        var command = new Command("remove", "Unregister a base no instance uses.") { name, store };
        command.SetAction((parse, _) => PrintAsync(
            BaseOperations.RemoveAsync(parse.GetValue(store)!, parse.GetValue(name)!)));
        return command;
    }

    private static async Task<int> PrintAsync(Task<string> operation)
    {
        await Console.Out.WriteAsync(await operation);
        return 0;
    }
}
