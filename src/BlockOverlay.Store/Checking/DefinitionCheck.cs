using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Checking;

/// <summary>
/// Instance definitions: each has an id (never 0), a name, a size and a quota in whole blocks;
/// in a checkpoint no id or name appears twice and every id is below the superblock's next id.
/// </summary>
internal static class DefinitionCheck
{
    private const int BlockSize = Superblock.Size;

    public static void CheckCheckpoint(IReadOnlyList<CheckpointInstance> saved, Superblock superblock, CheckLog log)
    {
        foreach (var id in saved.GroupBy(i => i.Definition.Id).Where(g => g.Count() > 1))
        {
            log.Problem(StoreProblemKind.BadDefinition, $"checkpoint: instance id {id.Key} is defined {id.Count()} times");
        }

        foreach (var name in saved.GroupBy(i => i.Definition.Name, StringComparer.Ordinal).Where(g => g.Count() > 1))
        {
            log.Problem(StoreProblemKind.BadDefinition, $"checkpoint: the name '{name.Key}' is given to {name.Count()} instances");
        }

        foreach (var instance in saved)
        {
            var d = instance.Definition;
            Check(d, "checkpoint", log);
            if (d.Id >= superblock.NextInstanceId)
            {
                log.Problem(StoreProblemKind.BadDefinition,
                    $"checkpoint: instance '{d.Name}' has id {d.Id}, yet the superblock gives the next instance id {superblock.NextInstanceId}");
            }
        }
    }

    public static void Check(InstanceDefinition d, string where, CheckLog log)
    {
        string who = $"{where}: instance '{d.Name}' (id {d.Id})";
        if (d.Id == 0)
        {
            log.Problem(StoreProblemKind.BadDefinition, $"{who}: id 0 is never given");
        }

        if (d.Name.Length == 0)
        {
            log.Problem(StoreProblemKind.BadDefinition, $"{who}: has no name");
        }

        if (d.VirtualSize <= 0 || d.VirtualSize % BlockSize != 0)
        {
            log.Problem(StoreProblemKind.BadDefinition, $"{who}: size {d.VirtualSize} bytes is not a positive multiple of {BlockSize}");
        }

        if (d.Quota < 0 || d.Quota % BlockSize != 0)
        {
            log.Problem(StoreProblemKind.BadDefinition, $"{who}: quota {d.Quota} bytes is not a multiple of {BlockSize}");
        }

        if (d.Base is { Size: < 0 } image)
        {
            log.Problem(StoreProblemKind.BadDefinition, $"{who}: its base '{image.Path}' has size {image.Size}");
        }
    }
}
