namespace BlockOverlay.Store.Checking;

/// <summary>The classes of problem <see cref="StoreChecker"/> finds, in the order it reports them.</summary>
public enum StoreProblemKind
{
    /// <summary>Neither superblock copy is valid: nothing else can be read.</summary>
    NoSuperblock,
    /// <summary>One superblock copy fails its checks; the store opens from the other.</summary>
    DamagedSuperblockCopy,
    /// <summary>Both copies are valid but disagree (another store, another geometry) or sit in the wrong block.</summary>
    StaleSuperblockCopy,
    /// <summary>The checkpoint fails its checksum, its decoding or its sequence.</summary>
    DamagedCheckpoint,
    /// <summary>A commit or record inside an intact batch is damaged, or an intact batch lies past the log's end.</summary>
    DamagedJournal,
    /// <summary>An instance definition with an impossible size, id, name or quota, or a repeated id or name.</summary>
    BadDefinition,
    /// <summary>A map entry before the start or past the end of its instance's virtual disk.</summary>
    MappingOutsideInstance,
    /// <summary>A map entry naming store blocks past the device's end or on the superblocks or the journal.</summary>
    MappingOutsideDataRegion,
    /// <summary>A store block named by two map entries, or by a map entry and the checkpoint.</summary>
    BlockOwnedTwice,
    /// <summary>Store blocks named by journal records of an instance the store does not know: owned by nobody.</summary>
    LeakedBlocks,
    /// <summary>The checkpoint's space record marks blocks its maps do not name, or misses blocks they do.</summary>
    SpaceRecordMismatch,
}

/// <summary>One class of problem as an operator reads it: its name, and what <c>--repair</c> does about it or why it does not.</summary>
/// <param name="Code">A stable name for scripts (the JSON report's "class").</param>
/// <param name="Title">What it is, in plain words.</param>
/// <param name="Repairable">Whether <see cref="StoreChecker.RepairAsync"/> fixes it.</param>
/// <param name="Remedy">What a repair does, or why it is left alone.</param>
public sealed record ProblemClass(StoreProblemKind Kind, string Code, string Title, bool Repairable, string Remedy)
{
    private static readonly Dictionary<StoreProblemKind, ProblemClass> All = new ProblemClass[]
    {
        new(StoreProblemKind.NoSuperblock, "no-superblock", "no valid superblock", false,
            "nothing on the device says where the journal, the checkpoint or the data are; restore the store from a copy"),
        new(StoreProblemKind.DamagedSuperblockCopy, "damaged-superblock-copy", "damaged superblock copy", true,
            "rewritten from the valid copy (the one the store opens with), so both copies are good again"),
        new(StoreProblemKind.StaleSuperblockCopy, "stale-superblock-copy", "superblock copies disagree", true,
            "the older copy is rewritten from the newer one, which is the one the store opens with"),
        new(StoreProblemKind.DamagedCheckpoint, "damaged-checkpoint", "damaged checkpoint", false,
            "every instance's map as of the checkpoint is in it: which block belongs to whom cannot be rebuilt without guessing"),
        new(StoreProblemKind.DamagedJournal, "damaged-journal", "damaged journal", false,
            "committed changes past the damage cannot be recovered without guessing; the store refuses to open rather than lose them silently"),
        new(StoreProblemKind.BadDefinition, "bad-definition", "bad instance definition", false,
            "the right size, id or name cannot be known; copy the data out (instance commit) and recreate the instance"),
        new(StoreProblemKind.MappingOutsideInstance, "mapping-outside-instance", "map entry outside its instance", false,
            "the entry names virtual blocks the instance does not have; which write it came from cannot be known"),
        new(StoreProblemKind.MappingOutsideDataRegion, "mapping-outside-data-region", "map entry outside the data region", false,
            "the data it names is not in the store (past the device's end) or lies under the superblocks or the journal"),
        new(StoreProblemKind.BlockOwnedTwice, "block-owned-twice", "store block owned twice", false,
            "the block holds one owner's data and which one cannot be known; copy each instance out (instance commit) and check the copies"),
        new(StoreProblemKind.LeakedBlocks, "leaked-blocks", "leaked blocks", true,
            "free after recovery anyway (recovery frees every block no instance owns); the repair opens the store and closes it cleanly, " +
            "so its closing checkpoint no longer names them"),
        new(StoreProblemKind.SpaceRecordMismatch, "space-record-mismatch", "space record disagrees with the maps", false,
            "the checkpoint's record of blocks in use should be exactly the blocks its maps name; the maps are what recovery trusts, " +
            "so copy the instances out (instance commit) into a new store"),
    }.ToDictionary(c => c.Kind);

    public static ProblemClass Of(StoreProblemKind kind) => All[kind];
}

/// <summary>How many problems of one class the checker found, with the first few described (where, which blocks, whose).</summary>
public sealed record ProblemCount(ProblemClass Class, long Count, IReadOnlyList<string> Examples);

/// <summary>What a check found: the problems per class (none: the store is clean) and what it saw on the way.</summary>
/// <param name="Notes">What was checked and found in order (a torn journal tail, normal after a crash, is a note).</param>
public sealed record CheckReport(IReadOnlyList<ProblemCount> Problems, IReadOnlyList<string> Notes)
{
    public bool Clean => Problems.Count == 0;

    public long Count(StoreProblemKind kind) => Problems.FirstOrDefault(p => p.Class.Kind == kind)?.Count ?? 0;
}

/// <summary>What a repair did, what it left and why, and the check that followed it.</summary>
public sealed record RepairReport(CheckReport Found, IReadOnlyList<string> Done, IReadOnlyList<string> Refused, CheckReport After);
