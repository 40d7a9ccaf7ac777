using System.Globalization;
using System.Text;
using System.Text.Json;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Exports;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Host.Live;

/// <summary>
/// Carries out an <see cref="InstanceRequest"/> on an open store: offline (a store file the
/// CLI opened for this one command) or live (the store a server holds, whose exports must
/// follow: a created instance is served the moment this returns, a deleted one is
/// disconnected and unlisted first). One code path for both, so the answer is the same.
/// </summary>
internal static class InstanceOperations
{
    /// <summary>
    /// Carries out the request. <paramref name="stop"/> ends a copy (commit, clone) between
    /// chunks; what it made so far is removed and the command fails.
    /// </summary>
    public static async Task<CommandOutcome> RunAsync(InstanceRequest request, UpperStore store, StoreHost? live,
        Action<ProgressReport>? progress = null, CancellationToken stop = default)
    {
        progress ??= _ => { };
        try
        {
            return request.Command switch
            {
                "commit" => CommandOutcome.Ok(await CommitAsync(request, store, live, progress, stop)),
                "clone" => CommandOutcome.Ok(await CloneAsync(request, store, live, progress, stop)),
                "create" => CommandOutcome.Ok(await CreateAsync(request, store, live)),
                "delete" => CommandOutcome.Ok(await DeleteAsync(request, store, live)),
                "list" => CommandOutcome.Ok(List(store)),
                "stat" => CommandOutcome.Ok(Stat(request, store, live)),
                "set" => CommandOutcome.Ok(await SetAsync(request, store)),
                _ => throw new FormatException($"unknown instance command '{request.Command}'"),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or ArgumentException
                                       or StoreFormatException or InstanceException or BaseImageChangedException or ExportException)
        {
            return CommandOutcome.Failed(request.Command, e.Message);
        }
    }

    public static FlushMode ParseFlushMode(string text) => text switch
    {
        "isolated" => FlushMode.Isolated,
        "global" => FlushMode.Global,
        "volatile" => FlushMode.Volatile,
        _ => throw new FormatException($"'{text}' is not a flush mode: use isolated, global or volatile"),
    };

    public static string Describe(FlushMode mode) => mode.ToString().ToLowerInvariant();

    private static async Task<string> CreateAsync(InstanceRequest request, UpperStore store, StoreHost? live)
    {
        string name = Required(request.Name, "NAME");
        if (!InstanceName.IsValid(name, out string? problem))
        {
            throw new FormatException($"'{name}' cannot be an instance name: {problem}");
        }

        if (request.Base is null && request.Size is null)
        {
            throw new FormatException("an instance needs --base IMAGE, or --size SIZE for one that starts as zeros");
        }

        var mode = ParseFlushMode(request.FlushMode ?? "isolated");
        long quota = ParseQuota(request.Quota);
        long? size = request.Size is null ? null : ByteSize.Parse(request.Size).Bytes;
        BaseIdentity? identity = null;
        if (request.Base is not null)
        {
            await using var image = BaseImage.Open(request.Base);
            identity = await image.IdentifyAsync();
        }

        long bytes = size ?? RoundUp(identity!.Size);
        if (bytes <= 0 || bytes % UpperStore.BlockSize != 0)
        {
            throw new FormatException($"size {bytes} is not a positive multiple of {UpperStore.BlockSize} bytes");
        }

        var instance = await store.CreateInstanceAsync(name, bytes, identity, mode, quota);
        if (live is not null)
        {
            await live.ServeAsync(instance);
        }

        return $"created instance '{name}' ({new ByteSize(bytes)}{(identity is null ? "" : $" over {identity.Path}")}, flush mode {Describe(mode)}" +
               (quota == 0 ? ")\n" : $", quota {new ByteSize(quota)})\n");
    }

    private static async Task<string> DeleteAsync(InstanceRequest request, UpperStore store, StoreHost? live)
    {
        string name = Required(request.Name, "NAME");
        _ = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        if (live is not null)
        {
            await live.DeleteAsync(name, request.Force, () => store.DeleteInstanceAsync(name));
        }
        else
        {
            await store.DeleteInstanceAsync(name);
        }

        return $"deleted instance '{name}'\n";
    }

    private static string List(UpperStore store)
    {
        var text = new StringBuilder();
        foreach (var instance in store.Instances)
        {
            var d = instance.Definition;
            string mode = Describe(d.FlushMode) + (d.Unclean ? ",unclean" : "");
            text.Append(CultureInfo.InvariantCulture,
                $"{d.Name}\t{new ByteSize(d.VirtualSize)}\t{new ByteSize(instance.UpperBlocks * UpperStore.BlockSize)}\t{mode}\t{d.Base?.Path ?? "-"}\n");
        }

        return text.ToString();
    }

    private static string Stat(InstanceRequest request, UpperStore store, StoreHost? live)
    {
        string name = Required(request.Name, "NAME");
        var instance = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        var d = instance.Definition;
        var served = live?.Served(name);
        var counters = served?.Export.Counters;
        var stat = new InstanceStat(d.Name, d.VirtualSize, d.Base?.Path, Describe(d.FlushMode), d.Unclean, d.Quota,
            instance.FootprintBlocks * UpperStore.BlockSize, instance.UpperBlocks * UpperStore.BlockSize, instance.ExtentCount, served is not null, served?.Connections ?? 0,
            served?.Export.DirtyBytes ?? 0, counters?.Flushes ?? 0, counters?.FlushDataBytes ?? 0, counters?.FlushMetaBytes ?? 0,
            counters?.FlushTime.TotalSeconds ?? 0, counters?.WriteBackBytes ?? 0, counters?.Throttled.TotalSeconds ?? 0);
        return request.Json ? JsonSerializer.Serialize(stat, ControlJson.Default.InstanceStat) + "\n" : stat.ToText();
    }

    private static async Task<string> SetAsync(InstanceRequest request, UpperStore store)
    {
        string name = Required(request.Name, "NAME");
        if (request.FlushMode is null && request.Quota is null)
        {
            throw new FormatException("say what to set: --flush-mode MODE and/or --quota SIZE");
        }

        // Both are parsed before either changes: a bad value changes nothing.
        FlushMode? mode = request.FlushMode is null ? null : ParseFlushMode(request.FlushMode);
        long? quota = request.Quota is null ? null : ParseQuota(request.Quota);
        var said = new List<string>();
        if (mode is { } m)
        {
            await store.SetFlushModeAsync(name, m);
            said.Add($"flush mode {Describe(m)}");
        }

        if (quota is { } q)
        {
            await store.SetQuotaAsync(name, q);
            said.Add(q == 0 ? "no quota" : $"quota {new ByteSize(q)}");
        }

        return $"instance '{name}': {string.Join(", ", said)}\n";
    }

    /// <summary>A quota: a size rounded to whole blocks, or "none" (0).</summary>
    private static long ParseQuota(string? text)
    {
        if (text is null or "none" or "0")
        {
            return 0;
        }

        long bytes = ByteSize.Parse(text).Bytes;
        return bytes <= 0
            ? throw new FormatException($"quota '{text}' must be positive (or 'none')")
            : RoundUp(bytes);
    }

    /// <summary>
    /// Writes the instance's whole view (base + upper + what is still dirty, when served) to a
    /// new raw image that can serve as a base: written under a temporary name, sparse where the
    /// view is zeros, synced, then renamed, so OUT either is complete or does not exist.
    /// </summary>
    private static async Task<string> CommitAsync(InstanceRequest request, UpperStore store, StoreHost? live, Action<ProgressReport> progress,
        CancellationToken stop)
    {
        string name = Required(request.Name, "NAME");
        string output = Required(request.Target, "OUT");
        if (File.Exists(output) || Directory.Exists(output))
        {
            throw new IOException($"{output} exists: commit writes a new image and never overwrites one");
        }

        var instance = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        await using var view = live?.Served(name) is { } served
            ? InstanceView.OfServed(served.Export)
            : await InstanceView.OpenAsync(store, instance);
        string partial = $"{output}.partial-{Environment.ProcessId}";
        try
        {
            await using (var file = new FileStream(partial, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.Asynchronous))
            {
                await view.CopyToAsync(file, (done, total) => progress(new ProgressReport(done, total)), stop);
                file.Flush(flushToDisk: true);
            }

            File.Move(partial, output);
        }
        catch
        {
            File.Delete(partial);
            throw;
        }

        return $"committed instance '{name}' to {output} ({new ByteSize(instance.Definition.VirtualSize)}): a raw image, usable as a base\n";
    }

    /// <summary>
    /// A new instance whose starting view is the source's flushed view: a served source is
    /// flushed first, then the store clones it (<see cref="UpperStore.CloneInstanceAsync"/>:
    /// base shared, upper data copied), and a live server serves the clone.
    /// </summary>
    private static async Task<string> CloneAsync(InstanceRequest request, UpperStore store, StoreHost? live, Action<ProgressReport> progress,
        CancellationToken stop)
    {
        string name = Required(request.Name, "SRC");
        string target = Required(request.Target, "NEW");
        if (!InstanceName.IsValid(target, out string? problem))
        {
            throw new FormatException($"'{target}' cannot be an instance name: {problem}");
        }

        _ = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        if (live?.Served(name) is { } served)
        {
            await served.Export.FlushAsync();
        }

        var (clone, copied) = await store.CloneInstanceAsync(name, target, (done, total) => progress(new ProgressReport(done, total)), stop);
        try
        {
            if (live is not null)
            {
                await live.ServeAsync(clone);
            }
        }
        catch
        {
            await store.DeleteInstanceAsync(target);
            throw;
        }

        return $"cloned instance '{name}' to '{target}' ({new ByteSize(copied)} of upper data copied; base shared)\n";
    }

    private static string Required(string? value, string what) =>
        value ?? throw new FormatException($"{what} is required");

    private static long RoundUp(long bytes) => (bytes + UpperStore.BlockSize - 1) / UpperStore.BlockSize * UpperStore.BlockSize;
}
