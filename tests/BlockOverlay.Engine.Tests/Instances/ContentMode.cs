namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>What written data looks like.</summary>
internal enum ContentMode
{
    /// <summary>Seeded random bytes.</summary>
    Random,

    /// <summary>
    /// Self-describing: every 8-byte word (aligned in the virtual disk) names the instance, the
    /// operation and its own position, so any block read back can be told apart piece by piece.
    /// </summary>
    Stamped,
}
