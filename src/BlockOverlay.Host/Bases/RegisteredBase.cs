using System.Text.Json.Serialization;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// One name in the base registry: the image it stands for (an absolute path, compared as is
/// with the base paths instances record) and whether the registry owns the file (it copied
/// it in with <c>--import</c>, so removing the name deletes the file too).
/// </summary>
internal sealed record RegisteredBase(string Name, string Path, bool Imported);

/// <summary>The registry file's content; <see cref="Version"/> lets a later format be refused rather than misread.</summary>
internal sealed record RegistryDocument(int Version, IReadOnlyList<RegisteredBase> Bases);

/// <summary>Source-generated JSON for the registry file (indented: people read and diff it).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(RegistryDocument))]
internal sealed partial class RegistryJson : JsonSerializerContext;
