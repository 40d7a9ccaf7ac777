using System.Globalization;
using System.Text;

namespace BlockOverlay.Store.Format;

/// <summary>
/// Who may see and open an instance over NBD: the store keeps the rules with the definition,
/// the protocol layer judges them (it is the one that knows the peer). Each rule bytes on disk:
/// u8 kind, u16 value length n, n bytes (a uid or gid as u32; a certificate subject as UTF-8).
/// A rule list is a u16 count and the rules. docs/FORMAT.md draws them.
/// </summary>
internal static class AccessFormat
{
    private const int CountBytes = 2, KindBytes = 1, LengthBytes = 2, IdBytes = 4;

    /// <summary>Bytes of <paramref name="access"/> as a rule list (2 for an open instance).</summary>
    public static int EncodedSize(InstanceAccess access) =>
        CountBytes + access.Rules.Sum(r => KindBytes + LengthBytes + ValueBytes(r));

    /// <summary>Writes the rule list at <paramref name="at"/>; returns where it ends.</summary>
    public static int Encode(Span<byte> body, int at, InstanceAccess access)
    {
        new U16Field(at).Write(body, (ushort)access.Rules.Count);
        at += CountBytes;
        foreach (var rule in access.Rules)
        {
            new U8Field(at).Write(body, (byte)rule.Kind);
            int length = ValueBytes(rule);
            new U16Field(at + KindBytes).Write(body, (ushort)length);
            var value = body.Slice(at + KindBytes + LengthBytes, length);
            if (rule.Kind == AccessKind.CertificateSubject)
            {
                Encoding.UTF8.GetBytes(rule.Subject, value);
            }
            else
            {
                new U32Field(0).Write(value, rule.Id);
            }

            at += KindBytes + LengthBytes + length;
        }

        return at;
    }

    /// <summary>Reads a rule list that fills <paramref name="bytes"/> exactly; anything else is a format error.</summary>
    public static InstanceAccess Decode(ReadOnlySpan<byte> bytes, string where)
    {
        var access = DecodeStart(bytes, where, out int end);
        return end == bytes.Length
            ? access
            : throw new StoreFormatException($"{where}: {bytes.Length - end} bytes follow the access rules");
    }

    /// <summary>Reads the rule list at the start of <paramref name="bytes"/>; <paramref name="end"/> is where it ends.</summary>
    public static InstanceAccess DecodeStart(ReadOnlySpan<byte> bytes, string where, out int end)
    {
        int count = new U16Field(0).Read(bytes);
        if (count > InstanceAccess.MaxRules)
        {
            throw new StoreFormatException($"{where}: {count} access rules; an instance holds at most {InstanceAccess.MaxRules}");
        }

        var rules = new List<AccessRule>(count);
        int at = CountBytes;
        for (int i = 0; i < count; i++)
        {
            var kind = (AccessKind)new U8Field(at).Read(bytes);
            int length = new U16Field(at + KindBytes).Read(bytes);
            var value = bytes.Slice(at + KindBytes + LengthBytes, length);
            rules.Add(kind switch
            {
                AccessKind.Uid or AccessKind.Gid when length == IdBytes => new AccessRule(kind, new U32Field(0).Read(value)),
                AccessKind.CertificateSubject => AccessRule.Certificate(Encoding.UTF8.GetString(value)),
                _ => throw new StoreFormatException($"{where}: access rule {i} of kind {(byte)kind} with {length} bytes is not known " +
                                                    "(written by a newer blockoverlay?)"),
            });
            at += KindBytes + LengthBytes + length;
        }

        end = at;
        return new InstanceAccess(rules);
    }

    private static int ValueBytes(AccessRule rule) =>
        rule.Kind == AccessKind.CertificateSubject ? Encoding.UTF8.GetByteCount(rule.Subject) : IdBytes;
}

/// <summary>What an access rule names (one byte on disk).</summary>
public enum AccessKind : byte
{
    /// <summary>A unix-socket peer with this user id (SO_PEERCRED).</summary>
    Uid = 1,
    /// <summary>A unix-socket peer with this group id, primary or supplementary.</summary>
    Gid = 2,
    /// <summary>A TLS client whose certificate has this subject.</summary>
    CertificateSubject = 3,
}

/// <summary>One rule: a client it names may see and open the instance. Written <c>uid:N</c>, <c>gid:N</c>, <c>cert:SUBJECT</c>.</summary>
public sealed record AccessRule(AccessKind Kind, uint Id = 0, string Subject = "")
{
    /// <summary>Longest certificate subject a rule may hold, in bytes of UTF-8.</summary>
    public const int MaxSubjectBytes = 1024;

    public static AccessRule Certificate(string subject) => new(AccessKind.CertificateSubject, Subject: subject);

    /// <summary>Reads <c>uid:N</c>, <c>gid:N</c> or <c>cert:SUBJECT</c>.</summary>
    /// <exception cref="FormatException">Anything else.</exception>
    public static AccessRule Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string kind = colon < 0 ? text : text[..colon], value = colon < 0 ? string.Empty : text[(colon + 1)..];
        return kind switch
        {
            "uid" or "gid" when uint.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out uint id) =>
                new AccessRule(kind == "uid" ? AccessKind.Uid : AccessKind.Gid, id),
            "cert" when value.Length > 0 && Encoding.UTF8.GetByteCount(value) <= MaxSubjectBytes => Certificate(value),
            _ => throw new FormatException(
                $"access rule '{text}' is not uid:N, gid:N or cert:SUBJECT (a subject of 1 to {MaxSubjectBytes} bytes)"),
        };
    }

    public override string ToString() => Kind switch
    {
        AccessKind.Uid => $"uid:{Id}",
        AccessKind.Gid => $"gid:{Id}",
        _ => $"cert:{Subject}",
    };
}

/// <summary>An instance's rules: with none it is open to everyone who reaches the server, else to clients any rule names.</summary>
public sealed class InstanceAccess : IEquatable<InstanceAccess>
{
    /// <summary>Most rules an instance holds (its definition must fit one journal record).</summary>
    public const int MaxRules = 32;

    public InstanceAccess(IEnumerable<AccessRule> rules)
    {
        Rules = [.. rules.Distinct()];
        if (Rules.Count > MaxRules)
        {
            throw new InstanceException($"{Rules.Count} access rules; an instance holds at most {MaxRules}");
        }
    }

    /// <summary>No rule: everyone who can reach the server (the behaviour before rules existed).</summary>
    public static InstanceAccess Open { get; } = new([]);

    public IReadOnlyList<AccessRule> Rules { get; }

    public bool IsOpen => Rules.Count == 0;

    public bool Equals(InstanceAccess? other) => other is not null && Rules.SequenceEqual(other.Rules);

    public override bool Equals(object? obj) => Equals(obj as InstanceAccess);

    public override int GetHashCode() => Rules.Aggregate(Rules.Count, (hash, rule) => HashCode.Combine(hash, rule));

    /// <summary>The rules as the CLI writes them, comma-separated; "everyone" with none.</summary>
    public override string ToString() => IsOpen ? "everyone" : string.Join(",", Rules);
}
