using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store;

/// <summary>
/// What commits and checkpoints take from an instance, and what they give back when they fail.
/// The states, invariants and locking are in StoreInstance.cs.
/// </summary>
public sealed partial class StoreInstance
{
    /// <summary>
    /// Commit number <paramref name="number"/> takes everything uncommitted: records to journal
    /// (retries first), blocks to free once durable, and the checkpoint to wait for. Called by
    /// <see cref="Checkpoints.CommitOrder"/> only. An unloaded map has nothing to commit.
    /// </summary>
    internal CommitTake TakeCommit(ulong number)
    {
        var uncommitted = new List<MappedExtent>();
        lock (_gate)
        {
            _map?.CollectUncommitted(uncommitted);
            _map?.MarkAllCommitted();
            List<JournalRecord> records = [.. _retryRecords, .. uncommitted.Select(ToRecord)];
            _retryRecords = [];
            var frees = _freeAfterCommit;
            _freeAfterCommit = [];
            return new CommitTake(number, records, frees, _takenBy ?? Task.CompletedTask);
        }
    }

    /// <summary>
    /// A commit's journal write failed: its records go first in the next commit, before anything
    /// newer; unless a checkpoint took the map since it took them: then they are older than what
    /// that checkpoint holds (and if it fails, the next commit carries the whole map anyway).
    /// </summary>
    internal void CommitFailed(CommitTake taken)
    {
        lock (_gate)
        {
            if (taken.Number > _checkpointedThrough)
            {
                _retryRecords = [.. taken.Records, .. _retryRecords];
            }

            _freeAfterCommit.AddRange(taken.Frees);
            _changed = true; // the next checkpoint takes what the next commit would
        }
    }

    /// <summary>The checkpoint a commit depended on failed: its blocks wait for the next commit.</summary>
    internal void KeepFrees(List<(long, long)> frees)
    {
        lock (_gate)
        {
            _freeAfterCommit.AddRange(frees);
            _changed = true;
        }
    }

    /// <summary>
    /// A checkpoint takes the instance, standing after commit <paramref name="commitsThrough"/>: if
    /// anything changed since the last checkpoint took it, the whole map (marked committed; durable
    /// with <paramref name="durable"/>) and the blocks waiting for a commit; otherwise only its
    /// definition (<see cref="CheckpointTake.Extents"/> null: the checkpoint keeps its segment). An
    /// unloaded instance is never taken whole: its segment is current, and if its definition
    /// changed the take says so (<see cref="CheckpointTake.Changed"/>) and the entry is rewritten.
    /// Null if the instance is being deleted (its delete record is being written: it must not come
    /// back from a checkpoint) or is still being made (<see cref="IsPending"/>); left out, it
    /// counts as changed, so if it stays the next checkpoint takes it whole again.
    /// </summary>
    internal CheckpointTake? TakeForCheckpoint(Task durable, ulong commitsThrough)
    {
        lock (_gate)
        {
            if (_deleted || _pending)
            {
                _changed = true;
                return null;
            }

            if (!_changed)
            {
                return new CheckpointTake(Definition, null, [], Changed: false);
            }

            _changed = false;
            if (_map is null)
            {
                return new CheckpointTake(Definition, null, [], Changed: true);
            }

            _takenBy = durable;
            _checkpointedThrough = commitsThrough;
            var extents = _map.Extents
                .Select(e => new CheckpointExtent(e.VirtualBlock, e.Length, e.Kind == ExtentKind.Zero, e.StoreBlock)).ToList();
            _map.MarkAllCommitted();
            _retryRecords = [];
            var frees = _freeAfterCommit;
            _freeAfterCommit = [];
            return new CheckpointTake(Definition, extents, frees, Changed: true);
        }
    }

    /// <summary>
    /// The checkpoint that took this instance failed: the next commit carries the whole map as it
    /// is now. Not as the checkpoint took it: commits journaled since may hold newer state, and
    /// replaying the older snapshot after them would undo it. The current map supersedes
    /// everything earlier, including older retry records. An unloaded map has nothing to carry:
    /// its segment stays current; the definition goes into the next checkpoint again.
    /// </summary>
    internal void CheckpointFailed(List<(long, long)> frees, Task failed)
    {
        lock (_gate)
        {
            if (_map is not null)
            {
                _retryRecords = [.. _map.Extents.Select(ToRecord)];
            }

            _freeAfterCommit.AddRange(frees);
            _changed = true;
            if (ReferenceEquals(_takenBy, failed))
            {
                _takenBy = null; // commits now carry what it took
            }
        }
    }

    /// <summary>Whether a checkpoint that took this instance has become durable (false if none has, or it failed).</summary>
    internal async Task<bool> DurableThroughCheckpointAsync()
    {
        Task? checkpoint;
        lock (_gate)
        {
            checkpoint = _takenBy;
        }

        if (checkpoint is null)
        {
            return false;
        }

        try
        {
            await checkpoint;
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static JournalRecord ToRecord(MappedExtent e) => e.Kind == ExtentKind.Upper
        ? new MapRecord(e.VirtualBlock, e.StoreBlock, e.Length)
        : new ZeroRecord(e.VirtualBlock, e.Length);
}

/// <summary>
/// What a checkpoint took of an instance: its definition, and its whole map and the blocks to
/// free once durable if it changed (else null and none; null too for an unloaded instance, whose
/// segment stays). <see cref="Changed"/>: its entry must be rewritten, and if the checkpoint fails
/// the instance must be told (<see cref="StoreInstance.CheckpointFailed"/>).
/// </summary>
internal sealed record CheckpointTake(InstanceDefinition Definition, IReadOnlyList<CheckpointExtent>? Extents, List<(long Start, long Length)> Frees,
    bool Changed);

/// <summary>What one commit of an instance took: its number, records to journal, blocks to free once they are durable, and the checkpoint it must also wait for.</summary>
internal sealed record CommitTake(ulong Number, List<JournalRecord> Records, List<(long Start, long Length)> Frees, Task Checkpoint);
