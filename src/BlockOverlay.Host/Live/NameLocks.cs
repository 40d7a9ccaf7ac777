namespace BlockOverlay.Host.Live;

/// <summary>
/// Locks on instance names, so that commands on different instances run side by side (a long
/// commit or clone of one holds up nobody else) while two commands on one name take turns (a
/// create and a delete of one name must not interleave).
/// </summary>
/// <remarks>
/// A command takes all its names at once, in ordinal order, so two commands that share names
/// cannot wait for each other in a circle. An entry lives while someone holds or waits for it;
/// <see cref="_entries"/> is guarded by itself and held only for the table's own bookkeeping.
/// </remarks>
internal sealed class NameLocks
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>
    /// Waits until this caller holds every one of <paramref name="names"/>; disposing the result
    /// lets them go. Cancelled, it holds none of them.
    /// </summary>
    public async Task<IDisposable> LockAsync(IEnumerable<string> names, CancellationToken cancel = default)
    {
        var held = new Held(this);
        try
        {
            foreach (string name in names.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            {
                var entry = Join(name);
                try
                {
                    await entry.Gate.WaitAsync(cancel);
                }
                catch
                {
                    Leave(name, entry, release: false);
                    throw;
                }

                held.Names.Add((name, entry));
            }

            return held;
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    private Entry Join(string name)
    {
        lock (_entries)
        {
            if (!_entries.TryGetValue(name, out var entry))
            {
                _entries[name] = entry = new Entry();
            }

            entry.Users++;
            return entry;
        }
    }

    private void Leave(string name, Entry entry, bool release)
    {
        if (release)
        {
            entry.Gate.Release();
        }

        lock (_entries)
        {
            if (--entry.Users == 0)
            {
                _entries.Remove(name);
                entry.Gate.Dispose();
            }
        }
    }

    /// <summary>Names in use now (held or waited for): for tests, which check that nothing is left behind.</summary>
    public int Count
    {
        get
        {
            lock (_entries)
            {
                return _entries.Count;
            }
        }
    }

    private sealed class Entry
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Users { get; set; }  // holders and waiters: the entry goes when the last one leaves
    }

    private sealed class Held(NameLocks owner) : IDisposable
    {
        public List<(string Name, Entry Entry)> Names { get; } = [];

        public void Dispose()
        {
            foreach (var (name, entry) in Names)
            {
                owner.Leave(name, entry, release: true);
            }

            Names.Clear();
        }
    }
}
