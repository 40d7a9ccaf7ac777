namespace BlockOverlay.Io;

/// <summary>One write as <see cref="PowerLossDevice"/> saw it complete.</summary>
/// <param name="Offset">Where it started, in bytes.</param>
/// <param name="Length">Its length in bytes.</param>
/// <param name="Durable">Whether it was a forced-unit-access write.</param>
public readonly record struct LoggedWrite(long Offset, int Length, bool Durable);

/// <summary>
/// A decorator over a <see cref="MemoryDevice"/> that can answer "what would the media hold if
/// power failed now?" — many times over, with a different answer per seed, for crash tests.
/// </summary>
/// <remarks>
/// <para><b>The model.</b> The media is a sequence of 512-byte sectors; a sector is the unit a
/// disk writes atomically, so a power loss never leaves a mix of two contents inside one sector.
/// A durable write (FUA) is on stable media, for its own range only, when its task completes.
/// A non-durable write sits in a volatile cache until a flush: <see cref="FlushAsync"/> makes
/// durable every write that completed before it was called. At a power loss, each write not yet
/// durable independently meets one of three fates: kept whole, dropped whole, or torn (an
/// arbitrary subset of its sectors kept, the others keep what they held before). Several such
/// writes to one sector are applied in the order they completed, each with its own fate, so
/// the sector ends with its durable content or the content of one of those writes — every
/// value it really held since its last durable state, never anything else. A durable write
/// over a sector retires the cached writes to it: a newer FUA write is never undone by an
/// older cached one.</para>
/// <para><b>States.</b> The inner device holds the current content (what reads see). A second,
/// private image holds the durable content. Non-durable writes since the last flush are kept
/// with a copy of their data, and per sector the list of those whose content the sector may
/// still hold after a crash.</para>
/// <para><b>Invariants.</b> Durable image + retained writes, replayed with every fate "kept",
/// equals the current content. <see cref="Crash"/> changes nothing: it may be called any
/// number of times, and the same seed over the same history gives the same image.</para>
/// <para><b>Locking.</b> One lock; each call is atomic and completes synchronously, so no write
/// is ever "in flight" at a crash and the log is in completion order.</para>
/// <para><b>Gather writes.</b> The interface's default: gathered, then this device's own
/// <see cref="WriteAsync"/>, so a gather write is one logged write with one fate at a crash,
/// which is what the contract promises (any subset of its sectors, as for one large write).</para>
/// <para><b>The log.</b> Every write, durable or not, in completion order, so a test can assert
/// which ranges a flush wrote. Only the caller clears it.</para>
/// </remarks>
public sealed class PowerLossDevice : IBlockDevice
{
    /// <summary>The unit of atomicity at a power loss, in bytes.</summary>
    public const int SectorSize = 512;

    private readonly MemoryDevice _current;
    private readonly MemoryDevice _durable;
    private readonly List<CachedWrite> _cached = [];
    private readonly Dictionary<long, List<int>> _cachedWritersBySector = [];
    private readonly List<LoggedWrite> _log = [];
    private readonly Lock _lock = new();
    private long _flushes;

    /// <summary>Wraps <paramref name="inner"/>, whose current content counts as durable.</summary>
    public PowerLossDevice(MemoryDevice inner)
    {
        ArgumentNullException.ThrowIfNull(inner);
        _current = inner;
        _durable = inner.Clone();
    }

    private enum Fate
    {
        Kept,
        Dropped,
        Torn,
    }

    /// <inheritdoc/>
    public long Size => _current.Size;

    /// <summary>Every write since the device was created or the log last cleared, in completion order.</summary>
    public IReadOnlyList<LoggedWrite> WriteLog
    {
        get
        {
            lock (_lock)
            {
                return [.. _log];
            }
        }
    }

    /// <summary>Flushes completed.</summary>
    public long FlushCount => Interlocked.Read(ref _flushes);

    /// <summary>Forgets the logged writes (nothing else changes).</summary>
    public void ClearWriteLog()
    {
        lock (_lock)
        {
            _log.Clear();
        }
    }

    /// <inheritdoc/>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => _current.ReadAsync(offset, buffer);

    /// <inheritdoc/>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        BlockAlignment.Validate(Size, offset, data);
        lock (_lock)
        {
            _current.WriteUnaligned(offset, data.Span);
            if (durable)
            {
                _durable.WriteUnaligned(offset, data.Span);
                RetireCachedWriters(offset, data.Length);
            }
            else
            {
                RememberCachedWrite(offset, data);
            }

            _log.Add(new LoggedWrite(offset, data.Length, durable));
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask FlushAsync()
    {
        lock (_lock)
        {
            Span<byte> sector = stackalloc byte[SectorSize];
            foreach (var index in _cachedWritersBySector.Keys)
            {
                _current.ReadUnaligned(index * SectorSize, sector);
                _durable.WriteUnaligned(index * SectorSize, sector);
            }

            _cachedWritersBySector.Clear();
            _cached.Clear();
            Interlocked.Increment(ref _flushes);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public ValueTask DisposeAsync() => _current.DisposeAsync();

    /// <summary>
    /// The media after a power loss now: durable content plus, for each write not yet durable,
    /// a fate drawn from <paramref name="rng"/> (see the model above). This device is unchanged.
    /// </summary>
    public MemoryDevice Crash(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        lock (_lock)
        {
            var survivingSectors = _cached.Select(write => DrawSurvivingSectors(rng, write.SectorCount)).ToArray();
            var image = _durable.Clone();
            foreach (var (index, writers) in _cachedWritersBySector)
            {
                if (NewestSurvivor(index, writers, survivingSectors) is { } survivor)
                {
                    image.WriteUnaligned(index * SectorSize, _cached[survivor].Sector(index));
                }
            }

            return image;
        }
    }

    private void RememberCachedWrite(long offset, ReadOnlyMemory<byte> data)
    {
        var writer = _cached.Count;
        var write = new CachedWrite(offset / SectorSize, data.ToArray());
        _cached.Add(write);
        for (var index = write.FirstSector; index < write.FirstSector + write.SectorCount; index++)
        {
            if (!_cachedWritersBySector.TryGetValue(index, out var writers))
            {
                writers = [];
                _cachedWritersBySector.Add(index, writers);
            }

            writers.Add(writer);
        }
    }

    private void RetireCachedWriters(long offset, int length)
    {
        for (var index = offset / SectorSize; index < (offset + length) / SectorSize; index++)
        {
            _cachedWritersBySector.Remove(index);
        }
    }

    /// <summary>Which sectors of one cached write reach the media: all, none, or a random subset.</summary>
    private static bool[] DrawSurvivingSectors(Random rng, int sectorCount)
    {
        var surviving = new bool[sectorCount];
        switch ((Fate)rng.Next(3))
        {
            case Fate.Kept:
                Array.Fill(surviving, true);
                break;
            case Fate.Torn:
                for (var i = 0; i < sectorCount; i++)
                {
                    surviving[i] = rng.Next(2) == 1;
                }

                break;
            case Fate.Dropped:
                break;
        }

        return surviving;
    }

    /// <summary>The last writer (in completion order) whose content of this sector survived, if any.</summary>
    private int? NewestSurvivor(long index, List<int> writers, bool[][] survivingSectors)
    {
        for (var i = writers.Count - 1; i >= 0; i--)
        {
            var writer = writers[i];
            if (survivingSectors[writer][index - _cached[writer].FirstSector])
            {
                return writer;
            }
        }

        return null;
    }

    /// <summary>A non-durable write not yet flushed, with its own copy of the data.</summary>
    private sealed record CachedWrite(long FirstSector, byte[] Data)
    {
        public int SectorCount => Data.Length / SectorSize;

        public ReadOnlySpan<byte> Sector(long index) => Data.AsSpan((int)(index - FirstSector) * SectorSize, SectorSize);
    }
}
