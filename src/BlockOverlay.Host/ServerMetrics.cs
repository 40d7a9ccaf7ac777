using BlockOverlay.Engine.Cache;
using BlockOverlay.Host.Metrics;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;

namespace BlockOverlay.Host;

/// <summary>
/// What <c>/metrics</c> shows: the evidence for isolation (per-instance flush cost, dirty
/// data, background write-back, throttling), the store's bytes written by reason, and the
/// NBD server's traffic (connections, requests by command, errors by code, bytes moved).
/// Rendered on each scrape from the live counters; nothing is kept here.
/// </summary>
internal static class ServerMetrics
{
    public static string Render(WriteBackCache? cache, ServerCounters? server)
    {
        var text = new PrometheusText();
        var instances = cache?.Instances ?? [];
        Family(text, "blockoverlay_instance_dirty_bytes", MetricType.Gauge, "Bytes written by clients and not yet in the store.",
            instances, i => i.DirtyBytes);
        Family(text, "blockoverlay_instance_flushes_total", MetricType.Counter, "Flushes (FLUSH, and FUA writes) of the instance.",
            instances, i => i.Counters.Flushes);
        text.Family("blockoverlay_instance_flush_bytes_total", MetricType.Counter,
            "Bytes written to the store by the instance's flushes: kind=data its blocks, kind=meta its journal commits (global mode: everyone's).");
        foreach (var i in instances)
        {
            text.Sample(i.Counters.FlushDataBytes, ("instance", i.Name), ("kind", "data"));
            text.Sample(i.Counters.FlushMetaBytes, ("instance", i.Name), ("kind", "meta"));
        }

        text.Family("blockoverlay_instance_flush_seconds", MetricType.Histogram, "How long the instance's flushes took.");
        foreach (var i in instances)
        {
            var h = i.Counters.FlushSeconds;
            text.Histogram(new HistogramSnapshot(LatencyHistogram.Bounds, h.Counts(), h.Sum.TotalSeconds), ("instance", i.Name));
        }

        Family(text, "blockoverlay_instance_writeback_bytes_total", MetricType.Counter, "Bytes of the instance written back in the background.",
            instances, i => i.Counters.WriteBackBytes);
        text.Family("blockoverlay_instance_throttled_seconds_total", MetricType.Counter,
            "Time the instance's writers waited for its write-back, past its dirty limit.");
        foreach (var i in instances)
        {
            text.Sample(i.Counters.Throttled.TotalSeconds, ("instance", i.Name));
        }

        if (cache is not null)
        {
            StoreFamilies(text, cache);
        }

        if (server is not null)
        {
            ServerFamilies(text, server);
        }

        return text.ToString();
    }

    /// <summary>Every command and error code gets its sample even at 0, so dashboards find the series from the start.</summary>
    private static void ServerFamilies(PrometheusText text, ServerCounters server)
    {
        text.Family("blockoverlay_connections_total", MetricType.Counter, "Client connections accepted (sockets and stdio).");
        text.Sample(server.ConnectionsOpened);
        text.Family("blockoverlay_connections_open", MetricType.Gauge, "Client connections open now, negotiating ones included.");
        text.Sample(server.ConnectionsOpen);
        text.Family("blockoverlay_requests_total", MetricType.Counter, "Requests received, by command; refused ones included.");
        foreach (var command in Enum.GetValues<NbdCommand>())
        {
            text.Sample(server.RequestsOf(command), ("command", CommandLabel(command)));
        }

        text.Family("blockoverlay_request_errors_total", MetricType.Counter, "Error replies sent, by NBD error code.");
        foreach (var error in Enum.GetValues<NbdError>().Where(e => e != NbdError.None))
        {
            text.Sample(server.ErrorsOf(error), ("error", ErrorLabel(error)));
        }

        text.Family("blockoverlay_requests_rejected_total", MetricType.Counter,
            "Requests refused before any I/O: bad range, flags or command, or a write to a read-only export.");
        text.Sample(server.RejectedRequests);
        text.Family("blockoverlay_requests_failed_total", MetricType.Counter, "Requests the export failed (no space, I/O error, ...).");
        text.Sample(server.FailedRequests);
        text.Family("blockoverlay_read_bytes_total", MetricType.Counter, "Bytes clients read: the data of successful READs.");
        text.Sample(server.BytesRead);
        text.Family("blockoverlay_written_bytes_total", MetricType.Counter, "Bytes clients wrote: the data of successful WRITEs.");
        text.Sample(server.BytesWritten);
    }

    private static string CommandLabel(NbdCommand command) => command switch
    {
        NbdCommand.Read => "read",
        NbdCommand.Write => "write",
        NbdCommand.Disconnect => "disc",
        NbdCommand.Flush => "flush",
        NbdCommand.Trim => "trim",
        NbdCommand.Cache => "cache",
        NbdCommand.WriteZeroes => "write_zeroes",
        NbdCommand.BlockStatus => "block_status",
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "no metric label for this command"),
    };

    /// <summary>The errno names the NBD protocol uses for its error codes.</summary>
    private static string ErrorLabel(NbdError error) => error switch
    {
        NbdError.NotPermitted => "EPERM",
        NbdError.IoError => "EIO",
        NbdError.OutOfMemory => "ENOMEM",
        NbdError.InvalidArgument => "EINVAL",
        NbdError.NoSpace => "ENOSPC",
        NbdError.Overflow => "EOVERFLOW",
        NbdError.NotSupported => "ENOTSUP",
        NbdError.ShuttingDown => "ESHUTDOWN",
        _ => throw new ArgumentOutOfRangeException(nameof(error), error, "no metric label for this error"),
    };

    private static void StoreFamilies(PrometheusText text, WriteBackCache cache)
    {
        var store = cache.Store;
        text.Family("blockoverlay_store_bytes_written_total", MetricType.Counter,
            "Bytes the store wrote to its device, by reason: flush and background (instance data), journal, metadata, checkpoint.");
        foreach (var reason in Enum.GetValues<WriteReason>())
        {
            text.Sample(store.Counters[reason], ("reason", reason.ToString().ToLowerInvariant()));
        }

        text.Family("blockoverlay_store_free_bytes", MetricType.Gauge, "Free space in the store's data region.");
        text.Sample(store.FreeBlocks * UpperStore.BlockSize);
        text.Family("blockoverlay_cache_dirty_bytes", MetricType.Gauge, "Dirty bytes of every instance together.");
        text.Sample(cache.DirtyBytes);
        text.Family("blockoverlay_cache_writeback_failures_total", MetricType.Counter, "Background write-backs or checkpoints that failed (retried).");
        text.Sample(cache.BackgroundFailures);
    }

    private static void Family(PrometheusText text, string name, MetricType type, string help,
        IReadOnlyList<CachedInstance> instances, Func<CachedInstance, long> value)
    {
        text.Family(name, type, help);
        foreach (var i in instances)
        {
            text.Sample(value(i), ("instance", i.Name));
        }
    }
}
