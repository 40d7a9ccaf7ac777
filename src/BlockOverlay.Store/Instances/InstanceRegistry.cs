using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Instances;

/// <summary>The instances the store holds, by name, and the next instance id.</summary>
/// <remarks>
/// <para>
/// <b>States.</b> Name to instance; the next id (ids are never reused, deleted ones included).
/// The next id lives here, not in the current superblock, which checkpoints replace: each new
/// superblock takes it from here.
/// </para>
/// <para>
/// <b>Invariants.</b> Names are unique. Listing is by id, so checkpoints and operators see a
/// stable order.
/// </para>
/// <para>
/// <b>Locking.</b> <c>_lock</c> for memory work only. <see cref="Sum"/> runs its function under
/// it: it must take no lock (it reads <see cref="StoreInstance.ExtentCountEstimate"/>).
/// </para>
/// <para><b>Durability.</b> Memory only; create and delete records and checkpoints persist it.</para>
/// </remarks>
internal sealed class InstanceRegistry
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, StoreInstance> _byName;
    private uint _nextId;

    public InstanceRegistry(IEnumerable<StoreInstance> instances, uint nextId)
    {
        _byName = instances.ToDictionary(i => i.Name, StringComparer.Ordinal);
        _nextId = nextId;
    }

    /// <summary>The id the next new instance gets.</summary>
    public uint NextId
    {
        get
        {
            lock (_lock)
            {
                return _nextId;
            }
        }
    }

    /// <summary>Every instance, by id.</summary>
    public IReadOnlyList<StoreInstance> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _byName.Values.OrderBy(i => i.Definition.Id)];
            }
        }
    }

    public StoreInstance? Find(string name)
    {
        lock (_lock)
        {
            return _byName.GetValueOrDefault(name);
        }
    }

    /// <summary>
    /// Adds a new instance under the next id, which <paramref name="define"/> turns into its
    /// definition; <paramref name="pending"/> makes it pending from the start (see <see cref="StoreInstance.IsPending"/>).
    /// </summary>
    /// <exception cref="InstanceException">The name is taken.</exception>
    public StoreInstance Add(string name, Func<uint, InstanceDefinition> define, bool pending = false)
    {
        lock (_lock)
        {
            var instance = new StoreInstance(define(_nextId), pending);
            if (!_byName.TryAdd(name, instance))
            {
                throw new InstanceException($"an instance named '{name}' already exists");
            }

            _nextId++;
            return instance;
        }
    }

    public void Remove(string name)
    {
        lock (_lock)
        {
            _byName.Remove(name);
        }
    }

    /// <summary>Sums <paramref name="of"/> over the instances without copying the list.</summary>
    public long Sum(Func<StoreInstance, long> of)
    {
        lock (_lock)
        {
            long sum = 0;
            foreach (var instance in _byName.Values)
            {
                sum += of(instance);
            }

            return sum;
        }
    }
}
