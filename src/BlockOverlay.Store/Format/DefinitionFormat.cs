using System.Text;

namespace BlockOverlay.Store.Format;

/// <summary>
/// An instance's definition as bytes: the body of a CreateInstance record, and the same bytes
/// for each instance of a checkpoint. The fixed fields (<see cref="DefinitionLayout"/>) are
/// followed by the name, the base path (u16 length in bytes + UTF-8 each; an empty path means
/// no base), the mode byte and the quota (u64, bytes), then, only when the instance has access
/// rules or QoS settings, its rule list (<see cref="AccessFormat"/>; no rules: a count of 0), and
/// only with QoS settings other than the defaults, those (<see cref="QosFormat"/>). An open
/// instance with default settings has the bytes of a store written before rules and QoS existed,
/// and such bytes decode as open, unlimited and of the default weight. docs/FORMAT.md draws them.
/// </summary>
internal static class DefinitionFormat
{
    private const int LengthBytes = 2, ModeBytes = 1, QuotaBytes = 8;

    public static int EncodedSize(InstanceDefinition d) =>
        DefinitionLayout.BaseFingerprint.End + LengthBytes + Encoding.UTF8.GetByteCount(d.Name) +
        LengthBytes + Encoding.UTF8.GetByteCount(d.Base?.Path ?? string.Empty) + ModeBytes + QuotaBytes +
        (HasTail(d) ? AccessFormat.EncodedSize(d.Access) : 0) + (d.Qos.IsDefault ? 0 : QosFormat.EncodedSize);

    /// <summary>Writes <paramref name="d"/> into <paramref name="body"/> (exactly <see cref="EncodedSize"/> bytes).</summary>
    public static void Encode(Span<byte> body, InstanceDefinition d)
    {
        DefinitionLayout.Id.Write(body, d.Id);
        DefinitionLayout.VirtualSize.Write(body, d.VirtualSize);
        DefinitionLayout.BaseSize.Write(body, d.Base?.Size ?? 0);
        DefinitionLayout.BaseFingerprint.Write(body, d.Base?.Fingerprint ?? 0);
        int at = WriteString(body, DefinitionLayout.BaseFingerprint.End, d.Name);
        at = WriteString(body, at, d.Base?.Path ?? string.Empty);
        new U8Field(at).Write(body, d.ModeByte);
        new U64Field(at + ModeBytes).Write(body, d.Quota);
        if (HasTail(d))
        {
            at = AccessFormat.Encode(body, at + ModeBytes + QuotaBytes, d.Access);
        }

        if (!d.Qos.IsDefault)
        {
            QosFormat.Encode(body[at..], d.Qos);
        }
    }

    /// <summary>Reads a definition; a body too short for its lengths throws <see cref="ArgumentOutOfRangeException"/>.</summary>
    public static InstanceDefinition Decode(ReadOnlySpan<byte> body, string where)
    {
        uint id = DefinitionLayout.Id.Read(body);
        long size = DefinitionLayout.VirtualSize.ReadSigned(body);
        long baseSize = DefinitionLayout.BaseSize.ReadSigned(body);
        ulong fingerprint = DefinitionLayout.BaseFingerprint.Read(body);
        string name = ReadString(body, DefinitionLayout.BaseFingerprint.End, out int at);
        string path = ReadString(body, at, out at);
        var identity = path.Length == 0 ? null : new BaseIdentity(path, baseSize, fingerprint);
        var (mode, unclean) = InstanceDefinition.ReadModeByte(new U8Field(at).Read(body), where);
        long quota = new U64Field(at + ModeBytes).ReadSigned(body);
        var tail = body[(at + ModeBytes + QuotaBytes)..];
        if (tail.IsEmpty)
        {
            return new InstanceDefinition(id, name, size, identity, mode, unclean, quota);
        }

        var access = AccessFormat.DecodeStart(tail, where, out int end);
        return new InstanceDefinition(id, name, size, identity, mode, unclean, quota)
        {
            Access = access,
            Qos = end == tail.Length ? InstanceQos.Default : QosFormat.Decode(tail[end..], where),
        };
    }

    /// <summary>Whether anything follows the quota: the rule list comes first, so QoS settings bring an empty one.</summary>
    private static bool HasTail(InstanceDefinition d) => !d.Access.IsOpen || !d.Qos.IsDefault;

    private static int WriteString(Span<byte> body, int at, string text)
    {
        int length = Encoding.UTF8.GetBytes(text, body[(at + LengthBytes)..]);
        new U16Field(at).Write(body, (ushort)length);
        return at + LengthBytes + length;
    }

    private static string ReadString(ReadOnlySpan<byte> body, int at, out int next)
    {
        int length = new U16Field(at).Read(body);
        next = at + LengthBytes + length;
        return Encoding.UTF8.GetString(body.Slice(at + LengthBytes, length));
    }
}

/// <summary>The fixed start of a definition, in bytes; sizes in bytes.</summary>
internal static class DefinitionLayout
{
    public static readonly U32Field Id = new(0);
    public static readonly U64Field VirtualSize = new(Id.End);
    public static readonly U64Field BaseSize = new(VirtualSize.End);
    public static readonly U64Field BaseFingerprint = new(BaseSize.End);
}
