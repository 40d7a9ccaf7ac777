namespace BlockOverlay.Store.Maps;

/// <summary>What a range of an instance's virtual blocks reads as.</summary>
public enum ExtentKind : byte
{
    /// <summary>Not mapped: a read falls through to the base image.</summary>
    Base = 0,

    /// <summary>Held in the store, block i of the extent at <see cref="MappedExtent.StoreBlock"/> + i.</summary>
    Upper = 1,

    /// <summary>Reads as zeros whatever the base holds (trimmed, or zeroed over base data).</summary>
    Zero = 2,
}
