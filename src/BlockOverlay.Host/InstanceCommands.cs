using System.CommandLine;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

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
            SetCommand(store),
        };
    }

    private static Command CreateCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance's name; it is also its NBD export name." };
        var baseImage = new Option<string>("--base") { Description = "A raw image the instance starts as (never written)." };
        var size = new Option<string>("--size") { Description = "Virtual size (default: the base's, rounded up to 4 KiB); past the base it reads as zeros." };
        var mode = FlushModeOption("What a flush makes durable (default: isolated).");
        var command = new Command("create", "Create an instance.") { name, baseImage, size, mode, store };
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

            BaseIdentity? identity = null;
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
            var flushMode = ParseFlushMode(parse.GetValue(mode) ?? "isolated");
            await session.Store.CreateInstanceAsync(instanceName, bytes, identity, flushMode);
            Console.WriteLine($"created instance '{instanceName}' ({new ByteSize(bytes)}{(identity is null ? "" : $" over {identity.Path}")}, flush mode {Describe(flushMode)})");
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
        var command = new Command("list", "List instances: name, virtual size, upper data, flush mode, base.") { store };
        command.SetAction((parse, _) => CommandErrors.RunAsync("instance list", async () =>
        {
            await using var session = await StoreSession.OpenAsync(parse.GetValue(store)!);
            foreach (var instance in session.Store.Instances)
            {
                var d = instance.Definition;
                string mode = Describe(d.FlushMode) + (d.Unclean ? ",unclean" : "");
                Console.WriteLine($"{d.Name}\t{new ByteSize(d.VirtualSize)}\t{new ByteSize(instance.UpperBlocks * UpperStore.BlockSize)}\t{mode}\t{d.Base?.Path ?? "-"}");
            }

            return 0;
        }));
        return command;
    }

    private static Command SetCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to change." };
        var mode = FlushModeOption("The new flush mode (also clears an 'unclean' mark left by a crash in volatile mode).");
        mode.Required = true;
        var command = new Command("set", "Change an instance's settings.") { name, mode, store };
        command.SetAction((parse, _) => CommandErrors.RunAsync("instance set", async () =>
        {
            var flushMode = ParseFlushMode(parse.GetValue(mode)!);
            await using var session = await StoreSession.OpenAsync(parse.GetValue(store)!);
            await session.Store.SetFlushModeAsync(parse.GetValue(name)!, flushMode);
            Console.WriteLine($"instance '{parse.GetValue(name)}': flush mode {Describe(flushMode)}");
            return 0;
        }));
        return command;
    }

    private static Option<string> FlushModeOption(string description) => new("--flush-mode")
    {
        Description = description + " isolated: a flush writes this instance's data only; global: every instance's " +
                      "(the whole-filesystem syncfs baseline); volatile: flushes are acknowledged without persistence.",
    };

    private static FlushMode ParseFlushMode(string text) => text switch
    {
        "isolated" => FlushMode.Isolated,
        "global" => FlushMode.Global,
        "volatile" => FlushMode.Volatile,
        _ => throw new FormatException($"'{text}' is not a flush mode: use isolated, global or volatile"),
    };

    internal static string Describe(FlushMode mode) => mode.ToString().ToLowerInvariant();

    private static long RoundUp(long bytes) => (bytes + UpperStore.BlockSize - 1) / UpperStore.BlockSize * UpperStore.BlockSize;
}
