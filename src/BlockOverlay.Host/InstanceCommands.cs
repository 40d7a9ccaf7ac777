using System.CommandLine;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary>
/// <c>blockoverlay instance …</c>: create, delete and list instances of a store that no
/// server is holding (a served store is locked: the command says so).
/// </summary>
internal static class InstanceCommands
{
    public static Command Create()
    {
        var store = new Option<string>("--store") { Description = "The store file.", Required = true };
        return new Command("instance", "Manage instances (copy-on-write disks over a base image).")
        {
            CreateCommand(store),
            DeleteCommand(store),
            ListCommand(store),
        };
    }

    private static Command CreateCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance's name; it is also its NBD export name." };
        var baseImage = new Option<string>("--base") { Description = "A raw image the instance starts as (never written)." };
        var size = new Option<string>("--size") { Description = "Virtual size (default: the base's, rounded up to 4 KiB); past the base it reads as zeros." };
        var command = new Command("create", "Create an instance.") { name, baseImage, size, store };
        command.SetAction((parse, _) => CommandErrors.RunAsync("instance create", async () =>
        {
            string instanceName = parse.GetValue(name)!;
            if (!InstanceName.IsValid(instanceName, out string? problem))
            {
                throw new FormatException($"'{instanceName}' cannot be an instance name: {problem}");
            }

            string? basePath = parse.GetValue(baseImage);
            string? sizeText = parse.GetValue(size);
            if (basePath is null && sizeText is null)
            {
                throw new FormatException("an instance needs --base IMAGE, or --size SIZE for one that starts as zeros");
            }

            Store.Format.BaseIdentity? identity = null;
            if (basePath is not null)
            {
                await using var image = BaseImage.Open(basePath);
                identity = await image.IdentifyAsync();
            }

            long bytes = sizeText is null ? RoundUp(identity!.Size) : ByteSize.Parse(sizeText).Bytes;
            if (bytes <= 0 || bytes % UpperStore.BlockSize != 0)
            {
                throw new FormatException($"size {bytes} is not a positive multiple of {UpperStore.BlockSize} bytes");
            }

            await using var session = await StoreSession.OpenAsync(parse.GetValue(store)!);
            await session.Store.CreateInstanceAsync(instanceName, bytes, identity);
            Console.WriteLine($"created instance '{instanceName}' ({new ByteSize(bytes)}{(identity is null ? "" : $" over {identity.Path}")})");
            return 0;
        }));
        return command;
    }

    private static Command DeleteCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to delete, with all its data." };
        var command = new Command("delete", "Delete an instance and free its space.") { name, store };
        command.SetAction((parse, _) => CommandErrors.RunAsync("instance delete", async () =>
        {
            await using var session = await StoreSession.OpenAsync(parse.GetValue(store)!);
            await session.Store.DeleteInstanceAsync(parse.GetValue(name)!);
            Console.WriteLine($"deleted instance '{parse.GetValue(name)}'");
            return 0;
        }));
        return command;
    }

    private static Command ListCommand(Option<string> store)
    {
        var command = new Command("list", "List instances: name, virtual size, upper data, base.") { store };
        command.SetAction((parse, _) => CommandErrors.RunAsync("instance list", async () =>
        {
            await using var session = await StoreSession.OpenAsync(parse.GetValue(store)!);
            foreach (var instance in session.Store.Instances)
            {
                var d = instance.Definition;
                Console.WriteLine($"{d.Name}\t{new ByteSize(d.VirtualSize)}\t{new ByteSize(instance.UpperBlocks * UpperStore.BlockSize)}\t{d.Base?.Path ?? "-"}");
            }

            return 0;
        }));
        return command;
    }

    private static long RoundUp(long bytes) => (bytes + UpperStore.BlockSize - 1) / UpperStore.BlockSize * UpperStore.BlockSize;
}
