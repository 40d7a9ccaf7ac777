using System.CommandLine;
using BlockOverlay.Host.Bases;
using BlockOverlay.Host.Config;
using BlockOverlay.Host.Live;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host;

/// <summary>
/// <c>blockoverlay instance …</c>: create, delete, list, inspect and change instances. When a
/// server holds the store, the command goes through its control socket and takes effect
/// live; otherwise it works on the store file directly. Same answers either way.
/// </summary>
internal static class InstanceCommands
{
    /// <summary>The config naming the store when --store is not given; on every subcommand.</summary>
    private static readonly Option<string> ConfigOption = new("--config")
    {
        Description = $"A JSON config file whose \"store\" is used when --store is not given (default: ${HostConfig.EnvironmentVariable} when set).",
        Recursive = true,
    };

    public static Command Create()
    {
        var store = new Option<string>("--store") { Description = "The store file (default: the config's \"store\")." };
        return new Command("instance", "Manage instances (copy-on-write disks over a base image).")
        {
            ConfigOption,
            CreateCommand(store),
            DeleteCommand(store),
            ListCommand(store),
            StatCommand(store),
            SetCommand(store),
            CommitCommand(store),
            CloneCommand(store),
        };
    }

    private static Command CreateCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance's name; it is also its NBD export name." };
        var baseImage = new Option<string>("--base") { Description = "The image the instance starts as (never written): a base name (see: blockoverlay base list) or a raw image file." };
        var size = new Option<string>("--size") { Description = "Virtual size (default: the base's, rounded up to 4 KiB); past the base it reads as zeros." };
        var mode = FlushModeOption("What a flush makes durable (default: isolated).");
        var quota = QuotaOption();
        var allow = AllowOption("Who may see and open it over NBD (repeatable; default: everyone who reaches the socket).");
        var (iops, bps, weight) = QosOptions();
        var command = new Command("create", "Create an instance (served at once if a server holds the store).")
        {
            name, baseImage, size, mode, quota, allow, iops, bps, weight, store,
        };
        command.SetAction(async (parse, _) =>
        {
            string storePath = StorePath(parse, store);
            return await DispatchAsync(parse, store, new CreateRequest(
                parse.GetValue(name)!,
                // A registered base name or an image file, as an absolute path (the server's working directory is not ours).
                Base: parse.GetValue(baseImage) is { } image ? BaseRegistry.Resolve(storePath, image) : null,
                Size: parse.GetValue(size),
                FlushMode: parse.GetValue(mode),
                Quota: parse.GetValue(quota),
                Allow: parse.GetValue(allow) ?? [],
                IopsLimit: parse.GetValue(iops),
                BpsLimit: parse.GetValue(bps),
                Weight: parse.GetValue(weight)));
        });
        return command;
    }

    private static Command DeleteCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to delete, with all its data." };
        var force = new Option<bool>("--force") { Description = "Disconnect its clients (after their data is written back) instead of refusing." };
        var command = new Command("delete", "Delete an instance and free its space.") { name, force, store };
        command.SetAction((parse, _) => DispatchAsync(parse, store,
            new DeleteRequest(parse.GetValue(name)!, parse.GetValue(force))));
        return command;
    }

    private static Command ListCommand(Option<string> store)
    {
        var command = new Command("list", "List instances: name, virtual size, upper data, flush mode, base.") { store };
        command.SetAction((parse, _) => DispatchAsync(parse, store, new ListRequest()));
        return command;
    }

    private static Command StatCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to describe." };
        var json = new Option<bool>("--json") { Description = "One JSON object instead of lines for people." };
        var command = new Command("stat", "Show an instance's state and counters (live counters when served).") { name, json, store };
        command.SetAction((parse, _) => DispatchAsync(parse, store,
            new StatRequest(parse.GetValue(name)!), json: parse.GetValue(json)));
        return command;
    }

    private static Command SetCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to change." };
        var mode = FlushModeOption("The new flush mode (also clears an 'unclean' mark left by a crash in volatile mode).");
        var quota = QuotaOption();
        var allow = AllowOption("Replaces who may see and open it over NBD (repeatable); connections already open stay.");
        var allowAll = new Option<bool>("--allow-all") { Description = "Drop every access rule: anyone who reaches the socket may see and open it." };
        var (iops, bps, weight) = QosOptions();
        var command = new Command("set", "Change an instance's settings (live if served; new limits reach open connections).")
        {
            name, mode, quota, allow, allowAll, iops, bps, weight, store,
        };
        command.SetAction((parse, _) => DispatchAsync(parse, store,
            new SetRequest(parse.GetValue(name)!, FlushMode: parse.GetValue(mode), Quota: parse.GetValue(quota),
                Allow: parse.GetValue(allow) ?? [], AllowAll: parse.GetValue(allowAll),
                IopsLimit: parse.GetValue(iops), BpsLimit: parse.GetValue(bps), Weight: parse.GetValue(weight))));
        return command;
    }

    private static Option<string> FlushModeOption(string description) => new("--flush-mode")
    {
        Description = description + " isolated: a flush writes this instance's data only; global: every instance's " +
                      "(the whole-filesystem syncfs baseline); volatile: flushes are acknowledged without persistence.",
    };

    private static Command CommitCommand(Option<string> store)
    {
        var name = new Argument<string>("NAME") { Description = "The instance to write out." };
        var output = new Argument<string>("OUT") { Description = "The raw image to create (never overwritten); usable as a base." };
        var command = new Command("commit", "Write an instance's whole view (base + upper) to a new raw image, like docker commit.") { name, output, store };
        command.SetAction((parse, _) => DispatchAsync(parse, store,
            new CommitRequest(parse.GetValue(name)!, Path.GetFullPath(parse.GetValue(output)!))));
        return command;
    }

    private static Command CloneCommand(Option<string> store)
    {
        var source = new Argument<string>("SRC") { Description = "The instance to clone (flushed first if served)." };
        var target = new Argument<string>("NEW") { Description = "The new instance: same base, size, flush mode and quota; a copy of SRC's upper data." };
        var command = new Command("clone", "Make a new instance whose starting view is SRC's flushed view.") { source, target, store };
        command.SetAction((parse, _) => DispatchAsync(parse, store,
            new CloneRequest(parse.GetValue(source)!, parse.GetValue(target)!)));
        return command;
    }

    private static Option<string[]> AllowOption(string description) => new("--allow")
    {
        Description = description + " uid:N or gid:N: a unix-socket client of that user or group (SO_PEERCRED); " +
                      "cert:SUBJECT: a TLS client whose certificate has that subject. Others are told it does not exist.",
    };

    /// <summary>The QoS flags, kept as written (InstanceOperations parses them, live or offline alike).</summary>
    private static (Option<string> Iops, Option<string> Bps, Option<string> Weight) QosOptions() => (
        new("--iops-limit")
        {
            Description = "Most data requests (reads, writes, zeroes, trims; not flushes) per second, for all its connections together " +
                          "('none' or 0: no limit). Past it the server stops reading the client's socket for a while; nothing fails.",
        },
        new("--bps-limit") { Description = "Most bytes read or written per second, e.g. 64M ('none' or 0: no limit); held like --iops-limit." },
        new("--weight")
        {
            Description = $"Its share, 1 to {InstanceQos.MaxWeight} (default {InstanceQos.DefaultWeight}), where the server decides between " +
                          "instances: today, the background write-back among instances whose writers wait for it.",
        });

    private static Option<string> QuotaOption() => new("--quota")
    {
        Description = "Most upper data the instance may hold (e.g. 2G; 'none' for no limit). Past it, writes get ENOSPC; neighbours are unaffected.",
    };

    /// <summary>The store: --store, else the config's.</summary>
    private static string StorePath(ParseResult parse, Option<string> store) =>
        HostConfig.ResolveStore(parse.GetValue(store), parse.GetValue(ConfigOption));

    /// <summary>Through the server holding the store if there is one, else on the store file; the answer worded for people (or as JSON).</summary>
    private static async Task<int> DispatchAsync(ParseResult parse, Option<string> store, InstanceRequest request, bool json = false)
    {
        CommandOutcome outcome;
        ImportProgress? drawn = null;
        void Report(ProgressReport p)
        {
            drawn ??= ImportProgress.OnStandardError($"{request.Command} {(request as NamedRequest)?.Name}", p.Total);
            drawn.Report(p.Done);
        }

        try
        {
            outcome = InstanceText.Render(request, await InstanceClient.RunAsync(StorePath(parse, store), request, Report), json);
        }
        catch
        {
            // The command failed before or outside the store (CommandErrors says how): the bar goes first.
            drawn?.Abandon();
            throw;
        }

        if (outcome.ExitCode == 0)
        {
            drawn?.Complete();
        }
        else
        {
            drawn?.Abandon();
        }

        await Console.Out.WriteAsync(outcome.Stdout);
        await Console.Error.WriteAsync(outcome.Stderr);
        return outcome.ExitCode;
    }
}
