namespace BlockOverlay.Store.Format;

/// <summary>
/// The store on the device cannot be used as it is: corrupt, of an unknown version, or
/// not a store at all; or the device is too small to be made one. The message says what,
/// where (block numbers) and what to do.
/// </summary>
public sealed class StoreFormatException : Exception
{
    public StoreFormatException(string message) : base(message) { }

    public StoreFormatException(string message, Exception inner) : base(message, inner) { }
}
