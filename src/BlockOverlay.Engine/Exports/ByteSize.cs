using System.Diagnostics.CodeAnalysis;
using System.Globalization;

namespace BlockOverlay.Engine.Exports;

/// <summary>
/// A count of bytes as operators write it: digits with an optional binary unit,
/// <c>4096</c>, <c>512K</c>, <c>64M</c>, <c>1G</c>, <c>1T</c> (also <c>KiB</c>, <c>MiB</c>, …;
/// units are case-insensitive and always powers of 1024).
/// </summary>
/// <remarks>
/// Zero is a valid size here; callers that need a positive size check it themselves.
/// Decimal units (<c>MB</c>), fractions, signs and spaces are rejected rather than guessed.
/// </remarks>
public readonly record struct ByteSize : IParsable<ByteSize>
{
    private const string Units = "KMGTPE";

    /// <summary>Creates a size of <paramref name="bytes"/> bytes (not negative).</summary>
    public ByteSize(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Bytes = bytes;
    }

    /// <summary>The size in bytes.</summary>
    public long Bytes { get; }

    /// <summary>Parses <paramref name="text"/>; throws <see cref="FormatException"/> saying what is wrong.</summary>
    public static ByteSize Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return TryParse(text, out ByteSize size, out string? problem) ? size : throw new FormatException(problem);
    }

    /// <summary>Parses <paramref name="text"/>, or returns false if it is not a size.</summary>
    public static bool TryParse([NotNullWhen(true)] string? text, out ByteSize size) =>
        TryParse(text, out size, out _);

    static ByteSize IParsable<ByteSize>.Parse(string s, IFormatProvider? provider) => Parse(s);

    static bool IParsable<ByteSize>.TryParse([NotNullWhen(true)] string? s, IFormatProvider? provider, out ByteSize result) =>
        TryParse(s, out result);

    /// <summary>The shortest exact form: the largest unit that divides the size, e.g. <c>64M</c>, <c>4097</c>.</summary>
    public override string ToString()
    {
        if (Bytes == 0)
        {
            return "0";
        }

        long value = Bytes;
        int unit = -1;
        while (unit + 1 < Units.Length && (value & 1023) == 0)
        {
            value >>= 10;
            unit++;
        }

        string digits = value.ToString(CultureInfo.InvariantCulture);
        return unit < 0 ? digits : digits + Units[unit];
    }

    /// <summary>Parses, or says in <paramref name="problem"/> what is wrong with the text.</summary>
    internal static bool TryParse(string? text, out ByteSize size, [NotNullWhen(false)] out string? problem)
    {
        size = default;
        const string Expected = "expected a whole number of bytes with an optional binary unit K, M, G, T, P or E (for example 4096, 512K, 64M, 1G)";
        if (string.IsNullOrEmpty(text))
        {
            problem = $"An empty size: {Expected}.";
            return false;
        }

        int digitsEnd = 0;
        while (digitsEnd < text.Length && char.IsAsciiDigit(text[digitsEnd]))
        {
            digitsEnd++;
        }

        if (digitsEnd == 0)
        {
            problem = text[0] == '-'
                ? $"'{text}' is not a size: a size cannot be negative."
                : $"'{text}' is not a size: {Expected}.";
            return false;
        }

        if (!long.TryParse(text.AsSpan(0, digitsEnd), NumberStyles.None, CultureInfo.InvariantCulture, out long number))
        {
            problem = $"'{text}' is not a size: the number is too large.";
            return false;
        }

        ReadOnlySpan<char> suffix = text.AsSpan(digitsEnd);
        int shift = 0;
        if (!suffix.IsEmpty)
        {
            int unit = Units.IndexOf(char.ToUpperInvariant(suffix[0]));
            ReadOnlySpan<char> rest = suffix[1..];
            bool validRest = rest.IsEmpty || rest.Equals("iB", StringComparison.OrdinalIgnoreCase);
            if (unit < 0 || !validRest)
            {
                problem = rest.Equals("B", StringComparison.OrdinalIgnoreCase) && unit >= 0
                    ? $"'{text}' is ambiguous: units are binary; write {suffix[0]} or {suffix[0]}iB."
                    : $"'{text}' is not a size: unknown unit '{suffix}'; {Expected}.";
                return false;
            }

            shift = (unit + 1) * 10;
        }

        if (number > long.MaxValue >> shift)
        {
            problem = $"'{text}' is too large: the largest size is {long.MaxValue} bytes (just under 8E).";
            return false;
        }

        size = new ByteSize(number << shift);
        problem = null;
        return true;
    }
}
