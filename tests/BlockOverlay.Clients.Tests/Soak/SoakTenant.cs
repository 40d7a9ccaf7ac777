using BlockOverlay.LibNbd;

namespace BlockOverlay.Clients.Tests.Soak;

/// <summary>
/// One soak instance: its byte model and its connections' workers. The instance is cut into
/// 64 KiB chunks and each connection owns every chunk whose number is its own modulo the
/// connection count, so each connection knows exactly what its reads must return although
/// the connections write the same disk side by side. Every block written carries its
/// instance's number, which is how a read of another tenant's data is told from a stale one.
/// </summary>
internal sealed class SoakTenant
{
    public const int Block = 4096;
    public const int ChunkBlocks = 16;

    private readonly byte[] _model;
    private readonly int _connections;
    private readonly int _tenants;
    private readonly object _pause = new();
    private int _running;
    private bool _paused;

    public SoakTenant(int number, int tenants, string name, byte[] initial, int connections)
    {
        _tenants = tenants;
        Number = number;
        Name = name;
        _model = initial.ToArray();
        _connections = connections;
    }

    public int Number { get; }

    public string Name { get; }

    public long Blocks => _model.Length / Block;

    /// <summary>The instance's bytes as the server must hold them once every connection has flushed.</summary>
    public ReadOnlySpan<byte> Model => _model;

    /// <summary>Waits until every connection is outside an operation and holds them there: the instance may be deleted.</summary>
    public void Pause(TimeSpan timeout)
    {
        lock (_pause)
        {
            _paused = true;
            var deadline = DateTime.UtcNow + timeout;
            while (_running > 0)
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_pause, left))
                {
                    throw new TimeoutException($"{Name}: {_running} connections still busy after {timeout.TotalSeconds} s");
                }
            }
        }
    }

    /// <summary>After <see cref="Pause"/>: the instance was made anew from <paramref name="initial"/>; connections may go on.</summary>
    public void Resume(byte[] initial)
    {
        lock (_pause)
        {
            initial.CopyTo(_model, 0);
            _paused = false;
            Monitor.PulseAll(_pause);
        }
    }

    /// <summary>
    /// Runs one connection until <paramref name="stop"/>: connects, does random operations,
    /// disconnects (after a flush) whenever the instance is paused, and reconnects after.
    /// </summary>
    public void RunConnection(int connection, string uri, int seed, SoakTally tally, CancellationToken stop)
    {
        var rng = new Random(seed);
        var buffer = new byte[ChunkBlocks * Block];
        var check = new byte[ChunkBlocks * Block];
        long counter = 0;
        while (!stop.IsCancellationRequested)
        {
            if (!Enter(stop))
            {
                return;
            }

            try
            {
                using var client = new NbdClient();
                client.ConnectUri(uri);
                tally.Connects.Add(1);
                // Operations in bursts, re-checking the pause between them.
                while (!stop.IsCancellationRequested && !PauseRequested())
                {
                    for (int i = 0; i < 32; i++)
                    {
                        Operate(client, connection, rng, buffer, check, ref counter, tally);
                    }
                }

                client.Flush();
                tally.Flushes.Add(1);
                client.Shutdown();
            }
            catch (NbdException e)
            {
                tally.Error($"{Name} connection {connection}: {e.Message}");
            }
            finally
            {
                Leave();
            }
        }
    }

    private void Operate(NbdClient client, int connection, Random rng, byte[] buffer, byte[] check, ref long counter, SoakTally tally)
    {
        long chunk = OwnChunk(connection, rng);
        int start = rng.Next(ChunkBlocks);
        int blocks = 1 + rng.Next(ChunkBlocks - start);
        long offset = (chunk * ChunkBlocks + start) * Block;
        var bytes = buffer.AsSpan(0, blocks * Block);
        int dice = rng.Next(100);
        if (dice < 45)
        {
            for (int b = 0; b < blocks; b++)
            {
                Stamp(bytes.Slice(b * Block, Block), ++counter, rng);
            }

            client.Pwrite(bytes, (ulong)offset, rng.Next(10) == 0 ? CommandFlags.Fua : CommandFlags.None);
            bytes.CopyTo(_model.AsSpan((int)offset));
            tally.Writes.Add(1);
            tally.BytesWritten.Add(bytes.Length);
        }
        else if (dice < 85)
        {
            var got = check.AsSpan(0, blocks * Block);
            client.Pread(got, (ulong)offset);
            tally.Reads.Add(1);
            var want = _model.AsSpan((int)offset, got.Length);
            if (!got.SequenceEqual(want))
            {
                tally.Mismatch(Describe(got, want, offset), LeakedFrom(got, want, _tenants) is { } other && other != Number);
            }
        }
        else if (dice < 95)
        {
            client.Flush();
            tally.Flushes.Add(1);
        }
        else
        {
            client.Zero((ulong)bytes.Length, (ulong)offset);
            _model.AsSpan((int)offset, bytes.Length).Clear();
            tally.Zeroes.Add(1);
        }
    }

    private long OwnChunk(int connection, Random rng)
    {
        long chunks = Blocks / ChunkBlocks;
        long owned = (chunks - connection + _connections - 1) / _connections;
        return connection + rng.NextInt64(owned) * _connections;
    }

    /// <summary>A block of random bytes that begins with this instance's stamp (its number + 1, so zeros carry none) and a counter.</summary>
    private void Stamp(Span<byte> block, long counter, Random rng)
    {
        rng.NextBytes(block);
        BitConverter.TryWriteBytes(block, Number + 1);
        BitConverter.TryWriteBytes(block[4..], counter);
    }

    /// <summary>The tenant whose stamp the first differing block carries, or null when it carries none.</summary>
    private static int? LeakedFrom(ReadOnlySpan<byte> got, ReadOnlySpan<byte> want, int tenants)
    {
        int stamp = BitConverter.ToInt32(got[(got.CommonPrefixLength(want) / Block * Block)..]);
        return stamp >= 1 && stamp <= tenants ? stamp - 1 : null;
    }

    private string Describe(ReadOnlySpan<byte> got, ReadOnlySpan<byte> want, long offset)
    {
        int at = got.CommonPrefixLength(want);
        return $"{Name}: byte {offset + at} differs (read 0x{got[at]:x2}, model 0x{want[at]:x2}; block stamped {BitConverter.ToInt32(got[(at / Block * Block)..]) - 1})";
    }

    private bool Enter(CancellationToken stop)
    {
        lock (_pause)
        {
            while (_paused)
            {
                if (stop.IsCancellationRequested)
                {
                    return false;
                }

                Monitor.Wait(_pause, TimeSpan.FromMilliseconds(100));
            }

            _running++;
            return true;
        }
    }

    private bool PauseRequested()
    {
        lock (_pause)
        {
            return _paused;
        }
    }

    private void Leave()
    {
        lock (_pause)
        {
            _running--;
            Monitor.PulseAll(_pause);
        }
    }
}
