namespace BlockOverlay.Io.Rbd;

/// <summary>
/// Where a store (or a base) lives in Ceph: <c>rbd:POOL/IMAGE</c>, or <c>rbd:POOL/IMAGE@SNAP</c>
/// for a snapshot (read-only). The cluster itself is chosen by <see cref="CephClientOptions"/>.
/// </summary>
public sealed record RbdAddress(string Pool, string Image, string? Snapshot = null)
{
    /// <summary>The prefix that marks an address as RBD rather than a path.</summary>
    public const string Prefix = "rbd:";

    /// <summary>True when <paramref name="text"/> starts with <c>rbd:</c> (and so is not a file path).</summary>
    public static bool IsRbd(string text) => text.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Parses <c>rbd:POOL/IMAGE[@SNAP]</c>; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static RbdAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!IsRbd(text))
        {
            throw new FormatException($"'{text}' is not an RBD address (rbd:POOL/IMAGE)");
        }

        var rest = text[Prefix.Length..];
        string? snapshot = null;
        int at = rest.IndexOf('@', StringComparison.Ordinal);
        if (at >= 0)
        {
            snapshot = rest[(at + 1)..];
            rest = rest[..at];
        }

        var parts = rest.Split('/');
        if (parts.Length != 2 || parts[0].Length == 0 || parts[1].Length == 0 || snapshot is { Length: 0 })
        {
            throw new FormatException($"'{text}' is not an RBD address: write rbd:POOL/IMAGE (or rbd:POOL/IMAGE@SNAP for a snapshot)");
        }

        return new RbdAddress(parts[0], parts[1], snapshot);
    }

    /// <summary>The address as the user writes it.</summary>
    public override string ToString() => $"{Prefix}{Pool}/{Image}{(Snapshot is null ? "" : "@" + Snapshot)}";
}
