using System.Diagnostics.Metrics;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Store;
using Prometheus;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// Fills the per-instance families from one cache's instances, and shows the store's and the
/// cache's own families.
/// <para>
/// Counters and gauges are copied from <see cref="InstanceCounters"/> at the start of each
/// scrape (<see cref="Update"/>). The flush latency histogram cannot be copied — a histogram is
/// built from observations — so each flush's duration comes from the cache's
/// <see cref="WriteBackCache.Meter"/> as it is recorded, through a listener started here:
/// create this before clients can flush.
/// </para>
/// <para>
/// An instance's series show one opening of it (its <see cref="InstanceCounters.Incarnation"/>),
/// as the counters themselves do: when an instance is deleted and one of the same name made,
/// its series start again from zero, whichever of a scrape or a flush notices first. A series
/// is dropped when its instance is no longer open. <see cref="_lock"/> guards which opening
/// each name shows, so the drops and the observations do not cross; it is taken on every
/// flush, which costs far more than an uncontended lock.
/// </para>
/// </summary>
internal sealed class CacheFamilies : IDisposable
{
    private readonly WriteBackCache _cache;
    private readonly InstanceFamilies _instances;
    private readonly Counter _storeWritten;
    private readonly Gauge _storeFree;
    private readonly Gauge _cacheDirty;
    private readonly Counter _backgroundFailures;
    private readonly MeterListener _flushes = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, long> _shown = new(StringComparer.Ordinal); // instance name -> the incarnation its series show

    public CacheFamilies(WriteBackCache cache, InstanceFamilies instances, IMetricFactory factory)
    {
        _cache = cache;
        _instances = instances;
        _storeWritten = factory.CreateCounter("blockoverlay_store_bytes_written_total",
            "Bytes the store wrote to its device, by reason: flush and background (instance data), journal, metadata, checkpoint.", ["reason"]);
        _storeFree = factory.CreateGauge("blockoverlay_store_free_bytes", "Free space in the store's data region.");
        _cacheDirty = factory.CreateGauge("blockoverlay_cache_dirty_bytes", "Dirty bytes of every instance together.");
        _backgroundFailures = factory.CreateCounter("blockoverlay_cache_writeback_failures_total", "Background write-backs or checkpoints that failed (retried).");
        _flushes.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter == cache.Meter && instrument.Name == CacheMeter.FlushDuration)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _flushes.SetMeasurementEventCallback<double>(OnFlush);
        _flushes.Start();
    }

    /// <summary>Copies the live counters into the families, at the start of a scrape.</summary>
    public void Update()
    {
        lock (_lock)
        {
            // Read under the lock: an instance opened (and flushed) after this read is not taken for gone.
            var open = _cache.Instances;
            foreach (string gone in _shown.Keys.Except(open.Select(i => i.Name), StringComparer.Ordinal).ToList())
            {
                _shown.Remove(gone);
                _instances.Remove(gone);
            }

            foreach (var instance in open)
            {
                if (Show(instance.Name, instance.Counters.Incarnation))
                {
                    Copy(instance);
                }
            }
        }

        var store = _cache.Store;
        foreach (var reason in Enum.GetValues<WriteReason>())
        {
            _storeWritten.WithLabels(reason.ToString().ToLowerInvariant()).IncTo(store.Counters[reason]);
        }

        _storeFree.Set(store.FreeBlocks * UpperStore.BlockSize);
        _cacheDirty.Set(_cache.DirtyBytes);
        _backgroundFailures.IncTo(_cache.BackgroundFailures);
    }

    public void Dispose() => _flushes.Dispose();

    private void Copy(CachedInstance instance)
    {
        string name = instance.Name;
        var counters = instance.Counters;
        _instances.Dirty.WithLabels(name).Set(instance.DirtyBytes);
        _instances.Flushes.WithLabels(name).IncTo(counters.Flushes);
        _instances.FlushBytes.WithLabels(name, "data").IncTo(counters.FlushDataBytes);
        _instances.FlushBytes.WithLabels(name, "meta").IncTo(counters.FlushMetaBytes);
        _instances.FlushSeconds.WithLabels(name).Publish(); // one that never flushed shows its empty histogram
        _instances.WriteBack.WithLabels(name).IncTo(counters.WriteBackBytes);
        _instances.Throttled.WithLabels(name).IncTo(counters.Throttled.TotalSeconds);
        _instances.LimitWait.WithLabels(name).IncTo(counters.LimitWait.TotalSeconds);
        _instances.LimitWaits.WithLabels(name).IncTo(counters.LimitWaits);
        _instances.IopsLimit.WithLabels(name).Set(instance.Qos.IopsLimit);
        _instances.BpsLimit.WithLabels(name).Set(instance.Qos.BpsLimit);
        _instances.Weight.WithLabels(name).Set(instance.Qos.Weight);
    }

    private void OnFlush(Instrument instrument, double seconds, ReadOnlySpan<KeyValuePair<string, object?>> tags, object? state)
    {
        string? name = null;
        long incarnation = 0;
        foreach (var (key, value) in tags)
        {
            switch (key)
            {
                case CacheMeter.InstanceTag:
                    name = value as string;
                    break;
                case CacheMeter.IncarnationTag:
                    incarnation = value as long? ?? 0;
                    break;
            }
        }

        if (name is null)
        {
            return;
        }

        lock (_lock)
        {
            if (Show(name, incarnation))
            {
                _instances.FlushSeconds.WithLabels(name).Observe(seconds);
            }
        }
    }

    /// <summary>
    /// Whether the name's series show this incarnation, switching them (from zero) to it if it
    /// is newer than the one they show; false for an older one (a late flush of a closed instance).
    /// </summary>
    private bool Show(string name, long incarnation)
    {
        if (_shown.TryGetValue(name, out long shown))
        {
            if (incarnation <= shown)
            {
                return incarnation == shown;
            }

            _instances.Remove(name);
        }

        _shown[name] = incarnation;
        return true;
    }
}
