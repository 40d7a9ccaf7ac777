namespace BlockOverlay.Store;

/// <summary>No room left in the store for new upper data; nothing was changed.</summary>
public sealed class StoreFullException : IOException
{
    public StoreFullException(string message) : base(message) { }
}

/// <summary>An instance operation that cannot be done: unknown or duplicate name, bad size.</summary>
public sealed class InstanceException : Exception
{
    public InstanceException(string message) : base(message) { }
}
