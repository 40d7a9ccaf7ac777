namespace BlockOverlay.Store.Format;

/// <summary>
/// An instance's QoS settings as bytes (<see cref="QosLayout"/>, 20 bytes): the body of a SetQos
/// record, and the tail of a definition that has settings other than the defaults.
/// docs/FORMAT.md draws them.
/// </summary>
internal static class QosFormat
{
    public static int EncodedSize => QosLayout.Weight.End;

    public static void Encode(Span<byte> body, InstanceQos qos)
    {
        QosLayout.IopsLimit.Write(body, qos.IopsLimit);
        QosLayout.BpsLimit.Write(body, qos.BpsLimit);
        QosLayout.Weight.Write(body, (uint)qos.Weight);
    }

    /// <summary>Reads settings that fill <paramref name="bytes"/> exactly; anything else is a format error.</summary>
    public static InstanceQos Decode(ReadOnlySpan<byte> bytes, string where)
    {
        if (bytes.Length != EncodedSize)
        {
            throw new StoreFormatException($"{where}: QoS settings of {bytes.Length} bytes, not {EncodedSize}");
        }

        long iops = QosLayout.IopsLimit.ReadSigned(bytes), bps = QosLayout.BpsLimit.ReadSigned(bytes);
        uint weight = QosLayout.Weight.Read(bytes);
        return InstanceQos.Problem(iops, bps, weight) is { } problem
            ? throw new StoreFormatException($"{where}: {problem}")
            : new InstanceQos(iops, bps, (int)weight);
    }
}

/// <summary>The QoS settings, in bytes from their start; the units are on <see cref="InstanceQos"/>.</summary>
internal static class QosLayout
{
    public static readonly U64Field IopsLimit = new(0);
    public static readonly U64Field BpsLimit = new(IopsLimit.End);
    public static readonly U32Field Weight = new(BpsLimit.End);
}

/// <summary>
/// How much of the server an instance may use: limits on its requests (each 0 for none) and its
/// weight, its share where the server decides between instances (docs/DESIGN.md, "Limits and weights").
/// </summary>
public sealed record InstanceQos
{
    /// <summary>The weight of an instance nobody gave one; weights run from 1 to <see cref="MaxWeight"/>.</summary>
    public const int DefaultWeight = 100, MaxWeight = 10000;

    /// <exception cref="InstanceException">A negative limit, or a weight out of range.</exception>
    public InstanceQos(long iopsLimit, long bpsLimit, int weight = DefaultWeight)
    {
        if (Problem(iopsLimit, bpsLimit, (uint)Math.Max(weight, 0)) is { } problem)
        {
            throw new InstanceException(problem);
        }

        (IopsLimit, BpsLimit, Weight) = (iopsLimit, bpsLimit, weight);
    }

    /// <summary>No limits, the default weight: every instance before QoS existed.</summary>
    public static InstanceQos Default { get; } = new(0, 0);

    /// <summary>Most data requests (reads, writes, zeroes, trims) per second; 0: no limit.</summary>
    public long IopsLimit { get; }

    /// <summary>Most bytes read or written per second; 0: no limit.</summary>
    public long BpsLimit { get; }

    /// <summary>The instance's relative share, 1 to <see cref="MaxWeight"/>.</summary>
    public int Weight { get; }

    public bool IsDefault => Equals(Default);

    internal static string? Problem(long iops, long bps, uint weight) =>
        iops < 0 || bps < 0 ? $"QoS limits {iops} I/O/s and {bps} bytes/s must not be negative (0 for none)"
        : weight is < 1 or > MaxWeight ? $"weight {weight} is not between 1 and {MaxWeight}"
        : null;
}
