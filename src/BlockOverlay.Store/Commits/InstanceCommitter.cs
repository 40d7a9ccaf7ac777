using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Commits;

/// <summary>Commit(X): makes every write and zeroing of instance X done so far durable, in one commit of X only.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> A commit takes X's uncommitted entries (and the records of X's failed commits)
/// and marks them committed, journals them, then frees the blocks that X's durable mappings no
/// longer name (DESIGN.md, invariant 4).
/// </para>
/// <para>
/// <b>Invariants.</b> Only X's records, nothing of any other instance (several instances'
/// commits may still share one journal batch). Each commit is numbered in the store's
/// <see cref="CommitOrder"/>, so replay skips those a checkpoint already holds. A failed commit
/// keeps its records for X's next commit, before anything newer. Changes a checkpoint took are durable only with it, so a
/// commit also waits for the last checkpoint that took X.
/// </para>
/// <para>
/// <b>Locking.</b> X's commit lock (async) is held from taking the records until they are
/// durable or failed: a second commit beside it would find nothing to do and report durable
/// what is still in flight, and a failed commit's records must be carried again before any
/// newer record of the same blocks, or replay would map an old block over a newer one.
/// </para>
/// <para><b>Durability.</b> Durable when the journal batch carrying it (and that checkpoint) is.</para>
/// </remarks>
internal sealed class InstanceCommitter(CommitOrder order, Checkpointer checkpointer, ReadQuarantine quarantine)
{
    /// <returns>The bytes this instance's commit took in the journal (its share of a shared batch).</returns>
    public async Task<long> CommitAsync(StoreInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        await instance.CommitLock.WaitAsync();
        try
        {
            return await CommitOneAsync(instance);
        }
        finally
        {
            instance.CommitLock.Release();
        }
    }

    private async Task<long> CommitOneAsync(StoreInstance instance)
    {
        var taken = order.TakeCommit(instance);
        if (taken.Records.Count == 0)
        {
            // Everything this instance changed is durable, or taken by a checkpoint still
            // being written: its completion is what makes it durable.
            await AwaitCheckpointAsync(instance, taken);
            quarantine.Free(taken.Frees);
            return 0;
        }

        var commit = new JournalCommit(instance.Definition.Id, taken.Records) { Number = taken.Number };
        try
        {
            await checkpointer.JournalAsync(commit);
        }
        catch
        {
            instance.CommitFailed(taken);
            throw;
        }

        // Changes a checkpoint took before this commit are durable only with that checkpoint.
        await AwaitCheckpointAsync(instance, taken);
        quarantine.Free(taken.Frees);
        return JournalFormat.EncodedSize(commit);
    }

    /// <summary>Waits for the checkpoint a commit depends on; if it failed, the commit's frees wait for the next commit.</summary>
    private static async Task AwaitCheckpointAsync(StoreInstance instance, CommitTake taken)
    {
        try
        {
            await taken.Checkpoint;
        }
        catch (IOException)
        {
            instance.KeepFrees(taken.Frees);
            throw;
        }
    }
}
