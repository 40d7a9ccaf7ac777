namespace BlockOverlay.Store.Checkpoints;

/// <summary>
/// The store's order of data commits against checkpoints: each commit takes the next number,
/// and a checkpoint takes every instance at one point of that order, so replay can tell which
/// journaled commits the checkpoint already holds.
/// </summary>
/// <remarks>
/// <para>
/// <b>Why.</b> A commit takes its records, then waits for its journal batch. A checkpoint that
/// takes the map meanwhile holds newer state than those records, yet replays from a journal
/// position at or before where they land: replayed over the checkpoint, they would map an
/// instance's older blocks over newer ones (blocks the checkpoint may already have freed).
/// </para>
/// <para>
/// <b>Invariants.</b> Every commit numbered at or below a checkpoint's number was taken before
/// the checkpoint took the maps, so the checkpoint holds its effect or a newer one: replay skips
/// it. Every commit numbered above was taken after, so it holds only newer changes. Numbers only
/// grow, across restarts too (recovery starts after the highest it saw).
/// </para>
/// <para>
/// <b>Locking.</b> Commits take their number and records under the read side, many at once; a
/// checkpoint takes the instances under the write side. Both are memory work only.
/// </para>
/// </remarks>
internal sealed class CommitOrder(ulong last) : IDisposable
{
    private readonly ReaderWriterLockSlim _lock = new();
    private ulong _last = last;

    /// <summary>A commit of <paramref name="instance"/> takes its number and its records in one step.</summary>
    public CommitTake TakeCommit(StoreInstance instance)
    {
        _lock.EnterReadLock();
        try
        {
            return instance.TakeCommit(Interlocked.Increment(ref _last));
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    /// <summary>
    /// A checkpoint takes the instances (<paramref name="take"/>, given the number they stand at)
    /// with no commit taken meanwhile. Returns that number: the checkpoint holds every commit up to it.
    /// </summary>
    public ulong TakeForCheckpoint(Action<ulong> take)
    {
        _lock.EnterWriteLock();
        try
        {
            ulong through = Interlocked.Read(ref _last);
            take(through);
            return through;
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    public void Dispose() => _lock.Dispose();
}
