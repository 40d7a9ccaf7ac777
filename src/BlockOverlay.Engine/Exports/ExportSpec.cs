using System.Diagnostics.CodeAnalysis;
using System.Text;
using BlockOverlay.Exports;

namespace BlockOverlay.Engine.Exports;

/// <summary>
/// An export as the command line names it: <c>NAME=memory:SIZE</c> or
/// <c>NAME=file:PATH[:ro]</c> (the argument of <c>blockoverlay serve --export</c>).
/// </summary>
/// <remarks>
/// The name ends at the first <c>=</c>, so names given this way cannot contain one; the
/// path is everything after <c>file:</c> except a final <c>:ro</c>.
/// </remarks>
public abstract record ExportSpec
{
    /// <summary>Longest export name in UTF-8 bytes (the NBD protocol's limit).</summary>
    public const int MaxNameBytes = 4096;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private protected ExportSpec(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsValidName(name, out string? problem))
        {
            throw new ArgumentException(problem, nameof(name));
        }

        Name = name;
    }

    /// <summary>The name clients ask for.</summary>
    public string Name { get; }

    /// <summary>
    /// Parses <c>NAME=memory:SIZE</c> or <c>NAME=file:PATH[:ro]</c>. Throws
    /// <see cref="FormatException"/> with a message naming the part that is wrong.
    /// </summary>
    public static ExportSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Expected = "expected NAME=memory:SIZE or NAME=file:PATH[:ro]";

        int equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals < 0)
        {
            throw new FormatException($"'{text}' is not an export: {Expected}.");
        }

        string name = text[..equals];
        if (!IsValidName(name, out string? problem))
        {
            throw new FormatException($"The name in export '{text}' is not valid: {problem}");
        }

        string target = text[(equals + 1)..];
        int colon = target.IndexOf(':', StringComparison.Ordinal);
        string kind = colon < 0 ? target : target[..colon];
        string argument = colon < 0 ? "" : target[(colon + 1)..];
        switch (kind)
        {
            case "memory":
                if (!ByteSize.TryParse(argument, out ByteSize size, out string? sizeProblem))
                {
                    throw new FormatException($"The size of memory export '{name}' is not valid: {sizeProblem}");
                }

                if (size.Bytes == 0)
                {
                    throw new FormatException($"The size of memory export '{name}' is zero; give a size such as 64M or 1G.");
                }

                return new MemoryExportSpec(name, size);

            case "file":
                bool readOnly = argument.EndsWith(":ro", StringComparison.Ordinal);
                string path = readOnly ? argument[..^3] : argument;
                if (path.Length == 0)
                {
                    throw new FormatException($"File export '{name}' has no path: {Expected}.");
                }

                if (path.Contains('\0', StringComparison.Ordinal))
                {
                    throw new FormatException($"The path of file export '{name}' contains a NUL character.");
                }

                return new FileExportSpec(name, path, readOnly);

            default:
                throw new FormatException($"'{kind}' in export '{text}' is not an export kind: {Expected}.");
        }
    }

    /// <summary>
    /// Whether <paramref name="name"/> can name an export: not empty, at most
    /// <see cref="MaxNameBytes"/> bytes of UTF-8, no NUL or other control characters.
    /// </summary>
    public static bool IsValidName(string name, [NotNullWhen(false)] out string? problem)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
        {
            problem = "an export name cannot be empty.";
            return false;
        }

        for (int i = 0; i < name.Length; i++)
        {
            if (char.IsControl(name[i]))
            {
                problem = $"control character U+{(int)name[i]:X4} at position {i}; names are printable text.";
                return false;
            }
        }

        int bytes;
        try
        {
            bytes = s_strictUtf8.GetByteCount(name);
        }
        catch (EncoderFallbackException)
        {
            problem = "it is not valid Unicode text (an unpaired surrogate).";
            return false;
        }

        if (bytes > MaxNameBytes)
        {
            problem = $"it is {bytes} bytes of UTF-8; the limit is {MaxNameBytes}.";
            return false;
        }

        problem = null;
        return true;
    }

    /// <summary>Opens the export this spec describes.</summary>
    public abstract IExport Open();
}

/// <summary>A sparse in-memory disk (<c>NAME=memory:SIZE</c>).</summary>
public sealed record MemoryExportSpec : ExportSpec
{
    public MemoryExportSpec(string name, ByteSize size) : base(name)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size.Bytes, nameof(size));
        Size = size;
    }

    /// <summary>Size of the disk.</summary>
    public ByteSize Size { get; }

    public override IExport Open() => new MemoryExport(Size.Bytes);

    public override string ToString() => $"{Name}=memory:{Size}";
}

/// <summary>A file or block device (<c>NAME=file:PATH[:ro]</c>).</summary>
public sealed record FileExportSpec : ExportSpec
{
    public FileExportSpec(string name, string path, bool readOnly) : base(name)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = path;
        ReadOnly = readOnly;
    }

    /// <summary>Path of the file or device, as given.</summary>
    public string Path { get; }

    /// <summary>Whether clients may only read.</summary>
    public bool ReadOnly { get; }

    public override IExport Open() => FileExport.Open(Path, ReadOnly);

    public override string ToString() => $"{Name}=file:{Path}{(ReadOnly ? ":ro" : "")}";
}
