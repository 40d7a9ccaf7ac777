using BlockOverlay.Io;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Space;

namespace BlockOverlay.Store.Instances;

/// <summary>Creating, redefining and deleting instances, each durable when it returns.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> An instance is listed (in the registry) from before its create record is written
/// until after its delete record is durable; meanwhile it may be marked deleted.
/// </para>
/// <para>
/// <b>Invariants.</b> A checkpoint takes the journal head first and lists instances after, so: a
/// new instance is listed before its create record is written (a checkpoint that misses the
/// record has the instance); a deleted one is left out of checkpoints before its delete record
/// is written (a checkpoint that lists it came before the record, which replay then applies),
/// and its blocks are freed only once that record is durable. A definition (flush mode, quota)
/// is replaced before its record is written, for the same reason. A create whose record fails
/// after a checkpoint listed the instance has happened and says so; a delete whose record fails
/// keeps the instance and checkpoints it back to durability. A delete loads the instance's map
/// first (under the lock, before its record): the map names the blocks it frees.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> (async) serializes these operations and is held across their
/// journal writes; it is separate from the checkpoint lock because a commit that finds the
/// journal full waits for a checkpoint.
/// </para>
/// <para><b>Durability.</b> Each operation is one journaled commit, durable before it returns.</para>
/// </remarks>
internal sealed class InstanceNamespace(IBlockDevice device, InstanceRegistry instances, Checkpointer checkpointer, ReadQuarantine quarantine)
    : IDisposable
{
    private const int BlockSize = Superblock.Size;
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <summary>Creates an instance; durable when this returns.</summary>
    /// <summary>
    /// Creates an instance that is not durable yet (<see cref="StoreInstance.IsPending"/>): it
    /// takes its name and id, and is filled in, then <see cref="PublishAsync"/> makes it durable
    /// whole, or a delete removes it. A crash before that forgets it.
    /// </summary>
    public async Task<StoreInstance> CreatePendingAsync(string name, long virtualSize, BaseIdentity? baseImage, FlushMode flushMode, long quota,
        InstanceAccess access, InstanceQos qos)
    {
        CheckQuota(quota);
        await _lock.WaitAsync();
        try
        {
            checkpointer.ThrowIfClosed();
            return instances.Add(name, id => new InstanceDefinition(id, name, virtualSize, baseImage, flushMode, Quota: quota) { Access = access, Qos = qos },
                pending: true);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Makes a pending instance durable in one step: a checkpoint that takes its definition and
    /// whole map together (the superblock that names it is written atomically).
    /// </summary>
    public async Task PublishAsync(StoreInstance instance)
    {
        ArgumentNullException.ThrowIfNull(instance);
        instance.Publish();
        await checkpointer.CheckpointAsync();
    }

    public async Task<StoreInstance> CreateAsync(string name, long virtualSize, BaseIdentity? baseImage, FlushMode flushMode, long quota,
        InstanceAccess access, InstanceQos qos)
    {
        if (virtualSize <= 0 || virtualSize % BlockSize != 0)
        {
            throw new InstanceException($"instance size {virtualSize} is not a positive multiple of {BlockSize} bytes");
        }

        CheckQuota(quota);
        await _lock.WaitAsync();
        try
        {
            checkpointer.ThrowIfClosed();
            var instance = instances.Add(name, id => new InstanceDefinition(id, name, virtualSize, baseImage, flushMode, Quota: quota) { Access = access, Qos = qos });
            try
            {
                await checkpointer.JournalAsync(new JournalCommit(instance.Definition.Id, CreateRecords(instance.Definition)));
            }
            catch (IOException)
            {
                if (await instance.DurableThroughCheckpointAsync())
                {
                    // A checkpoint that listed the instance made it durable even though its record failed.
                    return instance;
                }

                instances.Remove(name);
                throw;
            }

            return instance;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Replaces an instance's definition and journals the record that says so. The definition
    /// changes first, as a create lists the instance first: a checkpoint that takes the journal
    /// head past the record must list the new definition, or the change would be lost.
    /// </summary>
    public async Task RedefineAsync(string name, Func<InstanceDefinition, InstanceDefinition> change, JournalRecord record)
    {
        await _lock.WaitAsync();
        try
        {
            checkpointer.ThrowIfClosed();
            var instance = Find(name);
            var before = instance.Redefine(change(instance.Definition));
            try
            {
                await checkpointer.JournalAsync(new JournalCommit(before.Id, [record]));
            }
            catch (IOException)
            {
                // Not durable (unless a checkpoint took the new definition: then it has happened,
                // and the next checkpoint keeps it either way). Say it failed and keep the old one.
                instance.Redefine(before);
                throw;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Deletes an instance: durable when this returns, its blocks free from then on (never before).</summary>
    public async Task DeleteAsync(string name)
    {
        await _lock.WaitAsync();
        try
        {
            checkpointer.ThrowIfClosed();
            var instance = Find(name);
            await instance.LoadAsync(device); // its map says which blocks the delete frees
            instance.MarkDeleted();
            try
            {
                await checkpointer.JournalAsync(new JournalCommit(instance.Definition.Id, [new DeleteInstanceRecord()]));
            }
            catch (IOException)
            {
                instance.UnmarkDeleted();
                // A checkpoint may have left it out meanwhile: make it durable again before
                // saying the delete failed (if this fails too, the error says so).
                await checkpointer.CheckpointAsync();
                throw;
            }

            var runs = instance.Empty();
            instances.Remove(name);
            quarantine.Free(runs);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// The records of a create: rules go in a SetAccess record of the same commit, never in the
    /// CreateInstance, so a build that does not know them refuses the journal (unknown record)
    /// rather than serve a restricted instance to everyone; QoS settings likewise in a SetQos.
    /// </summary>
    private static List<JournalRecord> CreateRecords(InstanceDefinition d)
    {
        List<JournalRecord> records = [new CreateInstanceRecord(d with { Access = InstanceAccess.Open, Qos = InstanceQos.Default })];
        if (!d.Access.IsOpen)
        {
            records.Add(new SetAccessRecord(d.Access));
        }

        if (!d.Qos.IsDefault)
        {
            records.Add(new SetQosRecord(d.Qos));
        }

        return records;
    }

    /// <exception cref="InstanceException">Not a whole number of blocks, or negative.</exception>
    public static void CheckQuota(long quota)
    {
        if (quota < 0 || quota % BlockSize != 0)
        {
            throw new InstanceException($"quota {quota} is not a multiple of {BlockSize} bytes (0 for none)");
        }
    }

    public void Dispose() => _lock.Dispose();

    private StoreInstance Find(string name) => instances.Find(name) ?? throw new InstanceException($"no instance named '{name}'");
}
