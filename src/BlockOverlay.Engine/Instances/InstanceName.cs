using System.Diagnostics.CodeAnalysis;

namespace BlockOverlay.Engine.Instances;

/// <summary>
/// What an instance may be called. The name becomes an NBD export name and appears in
/// URIs, logs and command lines, so it is kept to characters that need no quoting
/// anywhere: letters, digits, '.', '_' and '-', 1 to 64 of them, starting with a letter
/// or digit (as container runtimes name their containers).
/// </summary>
public static class InstanceName
{
    public const int MaxLength = 64;

    public static bool IsValid(string name, [NotNullWhen(false)] out string? problem)
    {
        ArgumentNullException.ThrowIfNull(name);
        problem = name.Length switch
        {
            0 => "it is empty",
            > MaxLength => $"it is {name.Length} characters long, more than {MaxLength}",
            _ when !char.IsAsciiLetterOrDigit(name[0]) => "it must start with a letter or a digit",
            _ when name.FirstOrDefault(c => !char.IsAsciiLetterOrDigit(c) && c is not ('.' or '_' or '-')) is var bad and not '\0'
                => $"'{bad}' is not allowed (letters, digits, '.', '_' and '-' are)",
            _ => null,
        };
        return problem is null;
    }
}
