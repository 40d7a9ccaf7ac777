using System.Text.Json;
using System.Text.RegularExpressions;

namespace BlockOverlay.Host.Config;

/// <summary>
/// Turns the serializer's complaint about a config into the one line an operator needs: the
/// key's dotted path first (<c>cache.backgroundRatio</c>, <c>listen[1]</c>), then what is
/// wrong — an unknown key with the keys its object takes, a key given twice, or a value of the
/// wrong kind with what was found instead. The serializer says where (its JSON path); the
/// keys and kinds come from the source-generated metadata of <see cref="ConfigFile"/>, what
/// was found from the document itself.
/// </summary>
internal static partial class ConfigErrors
{
    /// <summary>The message for <paramref name="error"/>, thrown while reading <paramref name="document"/> as a <see cref="ConfigFile"/>.</summary>
    public static string Explain(JsonException error, JsonDocument document)
    {
        JsonElement? element = document.RootElement;
        var type = typeof(ConfigFile);
        string path = "";
        foreach (Match step in Step().Matches(error.Path ?? "$"))
        {
            if (step.Groups["index"].Success)
            {
                int index = int.Parse(step.Groups["index"].ValueSpan, System.Globalization.CultureInfo.InvariantCulture);
                path += $"[{index}]";
                type = typeof(string); // the only arrays are lists of strings
                element = element is { ValueKind: JsonValueKind.Array } array && index < array.GetArrayLength() ? array[index] : null;
                continue;
            }

            string key = step.Groups["name"].Success ? step.Groups["name"].Value : step.Groups["quoted"].Value.Replace("''", "'", StringComparison.Ordinal);
            string parentPath = path;
            path = path.Length == 0 ? key : $"{path}.{key}";
            var keys = ConfigJson.Default.GetTypeInfo(type)!.Properties;
            if (keys.FirstOrDefault(p => p.Name == key) is not { } property)
            {
                string where = parentPath.Length == 0 ? "the config" : $"'{parentPath}'";
                return $"unknown key '{path}' ({where} takes {string.Join(", ", keys.Select(p => p.Name))})";
            }

            if (element is { ValueKind: JsonValueKind.Object } parent && parent.EnumerateObject().Count(p => p.NameEquals(key)) > 1)
            {
                return $"{path}: given twice";
            }

            type = property.PropertyType;
            element = element is { ValueKind: JsonValueKind.Object } owner && owner.TryGetProperty(key, out var value) ? value : null;
        }

        string found = element is { } at ? $", not {Describe(at)}" : "";
        return path.Length == 0 ? $"expected a JSON object {{ ... }} at the top{found}" : $"{path}: expected {Expected(type)}{found}";
    }

    /// <summary>
    /// The message for the first key given as <c>null</c> in a document that read without
    /// error, or null when there is none: the serializer takes a null for "not given", but a
    /// key written with no value is a mistake to point at, as any value of the wrong kind.
    /// </summary>
    public static string? FirstNull(JsonElement element, Type type, string path = "")
    {
        foreach (var property in element.EnumerateObject())
        {
            string key = path.Length == 0 ? property.Name : $"{path}.{property.Name}";
            var expected = ConfigJson.Default.GetTypeInfo(type)!.Properties.First(p => p.Name == property.Name).PropertyType;
            string? problem = property.Value.ValueKind switch
            {
                JsonValueKind.Null => $"{key}: expected {Expected(expected)}, not null",
                JsonValueKind.Object => FirstNull(property.Value, expected, key),
                _ => null,
            };
            if (problem is not null)
            {
                return problem;
            }
        }

        return null;
    }

    /// <summary>What a JSON value is, as a message says it.</summary>
    public static string Describe(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {element.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => element.GetRawText(),
        _ => "null",
    };

    /// <summary>What a value of <paramref name="type"/> looks like in the file.</summary>
    public static string Expected(Type type) =>
        type == typeof(string) ? "a string in double quotes"
        : type == typeof(double?) ? "a number"
        : type == typeof(int?) ? "an integer"
        : type == typeof(IReadOnlyList<string?>) ? "an array [ \"...\", ... ]"
        : "an object { ... }";

    /// <summary>One step of a System.Text.Json path: <c>.name</c>, <c>['odd name']</c> or <c>[3]</c>.</summary>
    [GeneratedRegex(@"\.(?<name>[^.\[]+)|\['(?<quoted>(?:[^']|'')*)'\]|\[(?<index>\d+)\]")]
    private static partial Regex Step();
}
