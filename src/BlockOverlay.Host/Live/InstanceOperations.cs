using System.Globalization;
using BlockOverlay.Engine.Exports;
using BlockOverlay.Engine.Instances;
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
    /// chunks; what it made so far is removed and the command fails. A refused command is a
    /// <see cref="CommandFailed"/> saying why (<see cref="OperatorFailures"/>); a bug is thrown.
    /// </summary>
    public static async Task<InstanceResponse> RunAsync(InstanceRequest request, UpperStore store, StoreHost? live,
        Action<ProgressReport>? progress = null, CancellationToken stop = default)
    {
        progress ??= _ => { };
        try
        {
            return request switch
            {
                CommitRequest commit => await CommitAsync(commit, store, live, progress, stop),
                CloneRequest clone => await CloneAsync(clone, store, live, progress, stop),
                CreateRequest create => await CreateAsync(create, store, live),
                DeleteRequest delete => await DeleteAsync(delete, store, live),
                ListRequest => List(store),
                StatRequest stat => Stat(stat, store, live),
                SetRequest set => await SetAsync(set, store, live),
                _ => throw new ArgumentOutOfRangeException(nameof(request), request, "an instance command without an operation"),
            };
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } message)
        {
            return new CommandFailed(message);
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

    private static async Task<InstanceCreated> CreateAsync(CreateRequest request, UpperStore store, StoreHost? live)
    {
        string name = request.Name;
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
        var access = ParseAccess(request.Allow);
        var qos = ParseQos(InstanceQos.Default, request.IopsLimit, request.BpsLimit, request.Weight);
        long? size = request.Size is null ? null : ByteSize.Parse(request.Size).Bytes;
        // Live, a base the server holds open for other instances is not read again (BaseImages says when it is).
        var identity = request.Base is null ? null : await (live?.Bases ?? new BaseImages(StoreDevices.Ceph)).IdentifyAsync(request.Base);

        long bytes = size ?? RoundUp(identity!.Size);
        if (bytes <= 0 || bytes % UpperStore.BlockSize != 0)
        {
            throw new FormatException($"size {bytes} is not a positive multiple of {UpperStore.BlockSize} bytes");
        }

        // A plain export's name, checked before the store makes the instance: one made but not
        // served would be left behind. (An instance's own name is the store's to refuse.)
        if (live?.Serves(name) == true && store.Find(name) is null)
        {
            throw new InstanceException($"'{name}' is the name of an export this server already serves; choose another name");
        }

        var instance = await store.CreateInstanceAsync(name, bytes, identity, mode, quota, access, qos);
        if (live is not null)
        {
            await live.ServeAsync(instance);
        }

        return new InstanceCreated(name, bytes, identity?.Path, Describe(mode), quota, Describe(access), qos.IopsLimit, qos.BpsLimit, qos.Weight);
    }

    private static async Task<InstanceDeleted> DeleteAsync(DeleteRequest request, UpperStore store, StoreHost? live)
    {
        string name = request.Name;
        _ = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        if (live is not null)
        {
            await live.DeleteAsync(name, request.Force, () => store.DeleteInstanceAsync(name));
        }
        else
        {
            await store.DeleteInstanceAsync(name);
        }

        return new InstanceDeleted(name);
    }

    private static InstanceList List(UpperStore store) =>
        new([.. store.Instances.Select(i => new InstanceSummary(i.Definition.Name, i.Definition.VirtualSize, i.UpperBlocks * UpperStore.BlockSize,
            Describe(i.Definition.FlushMode), i.Definition.Unclean, i.Definition.Base?.Path))]);

    private static InstanceStat Stat(StatRequest request, UpperStore store, StoreHost? live)
    {
        string name = request.Name;
        var instance = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        var d = instance.Definition;
        var served = live?.Served(name);
        var counters = served?.Export.Counters;
        return new InstanceStat(d.Name, d.VirtualSize, d.Base?.Path, Describe(d.FlushMode), d.Unclean, d.Quota, Describe(d.Access),
            d.Qos.IopsLimit, d.Qos.BpsLimit, d.Qos.Weight, instance.FootprintBlocks * UpperStore.BlockSize, instance.UpperBlocks * UpperStore.BlockSize, instance.ExtentCount, served is not null, served?.Connections ?? 0,
            served?.Export.DirtyBytes ?? 0, counters?.Flushes ?? 0, counters?.FlushDataBytes ?? 0, counters?.FlushMetaBytes ?? 0,
            counters?.FlushTime.TotalSeconds ?? 0, counters?.WriteBackBytes ?? 0, counters?.Throttled.TotalSeconds ?? 0,
            counters?.LimitWait.TotalSeconds ?? 0, counters?.LimitWaits ?? 0);
    }

    private static async Task<InstanceChanged> SetAsync(SetRequest request, UpperStore store, StoreHost? live)
    {
        string name = request.Name;
        if (request.FlushMode is null && request.Quota is null && request.Allow.Count == 0 && !request.AllowAll &&
            request.IopsLimit is null && request.BpsLimit is null && request.Weight is null)
        {
            throw new FormatException("say what to set: --flush-mode MODE, --quota SIZE, --allow RULE, --allow-all, --iops-limit N, --bps-limit SIZE or --weight W");
        }

        if (request.AllowAll && request.Allow.Count > 0)
        {
            throw new FormatException("--allow-all opens the instance to everyone: it goes with no --allow");
        }

        // All are parsed before any changes: a bad value changes nothing.
        FlushMode? mode = request.FlushMode is null ? null : ParseFlushMode(request.FlushMode);
        long? quota = request.Quota is null ? null : ParseQuota(request.Quota);
        var access = request.AllowAll || request.Allow.Count > 0 ? ParseAccess(request.Allow) : null;
        var before = store.Find(name)?.Definition.Qos ?? throw new InstanceException($"no instance named '{name}'");
        var qos = request.IopsLimit is null && request.BpsLimit is null && request.Weight is null
            ? null
            : ParseQos(before, request.IopsLimit, request.BpsLimit, request.Weight);
        if (mode is { } m)
        {
            await store.SetFlushModeAsync(name, m);
        }

        if (quota is { } q)
        {
            await store.SetQuotaAsync(name, q);
        }

        if (access is not null)
        {
            await store.SetAccessAsync(name, access);
            live?.RejudgeAccess(name);
        }

        if (qos is not null)
        {
            await store.SetQosAsync(name, qos);
        }

        return new InstanceChanged(name, mode is { } changed ? Describe(changed) : null, quota, access is null ? null : Describe(access),
            request.IopsLimit is null ? null : qos!.IopsLimit, request.BpsLimit is null ? null : qos!.BpsLimit, request.Weight is null ? null : qos!.Weight);
    }

    /// <summary>Access rules as written (uid:N, gid:N, cert:SUBJECT); none is open to everyone.</summary>
    private static InstanceAccess ParseAccess(IReadOnlyList<string> allow) =>
        allow.Count == 0 ? InstanceAccess.Open : new InstanceAccess(allow.Select(AccessRule.Parse));

    private static string[] Describe(InstanceAccess access) => [.. access.Rules.Select(r => r.ToString())];

    /// <summary>
    /// QoS settings: <paramref name="current"/> with what was written replacing its parts. A
    /// request rate is a count per second, a byte rate a size per second (64M, 1G); "none" or 0
    /// lifts a limit; a weight is 1 to 10000.
    /// </summary>
    private static InstanceQos ParseQos(InstanceQos current, string? iops, string? bps, string? weight)
    {
        long iopsLimit = iops is null ? current.IopsLimit : ParseRate(iops, "--iops-limit", text =>
            long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : throw new FormatException($"--iops-limit '{text}' is not a whole number of requests per second (or 'none')"));
        long bpsLimit = bps is null ? current.BpsLimit : ParseRate(bps, "--bps-limit", text => ByteSize.Parse(text).Bytes);
        int share = weight is null ? current.Weight
            : int.TryParse(weight, NumberStyles.None, CultureInfo.InvariantCulture, out int w) ? w
            : throw new FormatException($"--weight '{weight}' is not a whole number from 1 to {InstanceQos.MaxWeight}");
        return new InstanceQos(iopsLimit, bpsLimit, share);
    }

    private static long ParseRate(string text, string flag, Func<string, long> parse)
    {
        long rate = text is "none" or "0" ? 0 : parse(text);
        return rate >= 0 ? rate : throw new FormatException($"{flag} '{text}' must be positive (or 'none')");
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
    private static async Task<InstanceCommitted> CommitAsync(CommitRequest request, UpperStore store, StoreHost? live, Action<ProgressReport> progress,
        CancellationToken stop)
    {
        string name = request.Name;
        string output = request.Target;
        if (File.Exists(output) || Directory.Exists(output))
        {
            throw new IOException($"{output} exists: commit writes a new image and never overwrites one");
        }

        var instance = store.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
        await using var view = live?.Served(name) is { } served
            ? InstanceView.OfServed(served.Export)
            : await InstanceView.OpenAsync(store, instance, new BaseImages(StoreDevices.Ceph));
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

        return new InstanceCommitted(name, output, instance.Definition.VirtualSize);
    }

    /// <summary>
    /// A new instance whose starting view is the source's flushed view: a served source is
    /// flushed first, then the store clones it (<see cref="UpperStore.CloneInstanceAsync"/>:
    /// base shared, upper data copied), and a live server serves the clone.
    /// </summary>
    private static async Task<InstanceCloned> CloneAsync(CloneRequest request, UpperStore store, StoreHost? live, Action<ProgressReport> progress,
        CancellationToken stop)
    {
        string name = request.Name;
        string target = request.Target;
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

        return new InstanceCloned(name, target, copied);
    }

    private static long RoundUp(long bytes) => (bytes + UpperStore.BlockSize - 1) / UpperStore.BlockSize * UpperStore.BlockSize;
}
