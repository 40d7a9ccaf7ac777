using BlockOverlay.Engine.Instances;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// Instance churn beyond <see cref="RecreateAsync"/> (delete + create): replacing an instance by a
/// clone of another. Not among <see cref="StepAsync()"/>'s picks, so the seeds of the existing
/// crash tests keep their sequences; the torture calls it.
/// </summary>
internal sealed partial class InstanceWorkload
{
    /// <summary>
    /// Deletes <paramref name="target"/>'s instance and clones <paramref name="source"/>'s under its
    /// name (the two are the same size). The source is flushed first: a clone copies what the store
    /// holds, not the cache. While it runs, a crash may leave the target missing or a whole clone.
    /// </summary>
    public async Task CloneOverAsync(InstanceModel target, InstanceModel source)
    {
        Assert.That(target.Size, Is.EqualTo(source.Size), "a clone replaces an instance of its own size");
        Begin($"clone-over {target.Name} from {source.Name}: flush {source.Name}, delete {target.Name}, clone {source.Name} as {target.Name}");
        await Exports[source.Index - 1].FlushAsync();
        source.MarkDurable();
        await Exports[target.Index - 1].DisposeAsync();
        byte[] content = source.Bytes.ToArray();
        target.RecreatingFrom = target.Id;
        target.RecreatingAs = content;
        await Store.DeleteInstanceAsync(target.Name);
        var (clone, _) = await Store.CloneInstanceAsync(source.Name, target.Name);
        target.Reset(content.ToArray(), clone.Definition.Id);
        target.RecreatingFrom = null;
        target.RecreatingAs = null;
        Exports[target.Index - 1] = await InstanceExport.OpenAsync(Cache, clone);
        byte[] actual = new byte[target.Size];
        await Exports[target.Index - 1].ReadAsync(0, actual);
        CompareWithModel(target, 0, actual, $"a clone of {source.Name} reads as its source");
    }
}
