using System.Diagnostics.CodeAnalysis;
using System.Text.Json;

namespace BlockOverlay.Host.Config;

/// <summary>
/// One JSON object of a config file, read strictly. Every key must be one the caller names
/// (a typo is an error naming it, never a setting silently ignored), none may appear twice
/// (JSON allows it and would keep one of them without a word), and each value must be of
/// the kind asked for.
/// </summary>
/// <remarks>
/// Every problem is a <see cref="FormatException"/> whose message starts with the key's
/// dotted path (<c>cache.backgroundRatio</c>, <c>listen[1]</c>), so the one-line error
/// points at the spot to fix. Values are interpreted by the caller's parse functions (sizes,
/// addresses, exports), whose own messages follow the path.
/// </remarks>
internal sealed class ConfigSection
{
    private readonly Dictionary<string, JsonElement> _values;
    private readonly string _name;

    private ConfigSection(Dictionary<string, JsonElement> values, string name)
    {
        _values = values;
        _name = name;
    }

    /// <summary>
    /// Takes <paramref name="element"/> as the section <paramref name="name"/> ("" for the top
    /// level) with the keys <paramref name="keys"/>; throws on anything else.
    /// </summary>
    public static ConfigSection Read(JsonElement element, string name, IReadOnlyList<string> keys)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException(name.Length == 0
                ? "expected a JSON object { ... } at the top"
                : $"{name}: expected an object {{ ... }}, not {Describe(element)}");
        }

        var values = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            string path = Join(name, property.Name);
            if (!keys.Contains(property.Name, StringComparer.Ordinal))
            {
                string where = name.Length == 0 ? "the config" : $"'{name}'";
                throw new FormatException($"unknown key '{path}' ({where} takes {string.Join(", ", keys)})");
            }

            if (!values.TryAdd(property.Name, property.Value))
            {
                throw new FormatException($"{path}: given twice");
            }
        }

        return new ConfigSection(values, name);
    }

    /// <summary>The dotted path of <paramref name="key"/> in this section, for messages.</summary>
    public string PathOf(string key) => Join(_name, key);

    /// <summary>The nested object <paramref name="key"/>, or null when it is not there.</summary>
    public ConfigSection? Section(string key, IReadOnlyList<string> keys) =>
        _values.TryGetValue(key, out var value) ? Read(value, PathOf(key), keys) : null;

    /// <summary>The string <paramref name="key"/> run through <paramref name="parse"/>; false when the key is not there.</summary>
    public bool TryRead<T>(string key, Func<string, T> parse, [MaybeNullWhen(false)] out T value)
    {
        if (!_values.TryGetValue(key, out var element))
        {
            value = default;
            return false;
        }

        value = Interpret(PathOf(key), TextOf(PathOf(key), element), parse);
        return true;
    }

    /// <summary>The number <paramref name="key"/>; false when the key is not there.</summary>
    public bool TryNumber(string key, out double value)
    {
        value = 0;
        if (!_values.TryGetValue(key, out var element))
        {
            return false;
        }

        if (element.ValueKind != JsonValueKind.Number || !element.TryGetDouble(out value))
        {
            throw new FormatException($"{PathOf(key)}: expected a number, not {Describe(element)}");
        }

        return true;
    }

    /// <summary>Each string of the array <paramref name="key"/> through <paramref name="parse"/>; empty when the key is not there.</summary>
    public IReadOnlyList<T> ReadEach<T>(string key, Func<string, T> parse)
    {
        if (!_values.TryGetValue(key, out var element))
        {
            return [];
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"{PathOf(key)}: expected an array [ \"...\", ... ], not {Describe(element)}");
        }

        var items = new List<T>();
        foreach (var item in element.EnumerateArray())
        {
            string path = $"{PathOf(key)}[{items.Count}]";
            items.Add(Interpret(path, TextOf(path, item), parse));
        }

        return items;
    }

    private static string TextOf(string path, JsonElement element) =>
        element.ValueKind == JsonValueKind.String
            ? element.GetString()!
            : throw new FormatException($"{path}: expected a string in double quotes, not {Describe(element)}");

    /// <summary>Runs <paramref name="parse"/>, putting the key's path before what it says is wrong.</summary>
    private static T Interpret<T>(string path, string text, Func<string, T> parse)
    {
        try
        {
            return parse(text);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
    }

    private static string Join(string name, string key) => name.Length == 0 ? key : $"{name}.{key}";

    private static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {element.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => $"{element.GetRawText()}",
        _ => "null",
    };
}
