using K4os.Hash.xxHash;

namespace BlockOverlay.Store.Format;

/// <summary>The checksums of the format: XXH64 over headers and payloads, XXH32 per record.</summary>
internal static class Checksums
{
    public static ulong Of(ReadOnlySpan<byte> bytes) => XXH64.DigestOf(bytes);

    public static ulong Of(ReadOnlySpan<byte> first, ReadOnlySpan<byte> second)
    {
        var state = new XXH64.State();
        XXH64.Reset(ref state);
        XXH64.Update(ref state, first);
        XXH64.Update(ref state, second);
        return XXH64.Digest(state);
    }

    public static uint OfRecord(ReadOnlySpan<byte> bytes) => XXH32.DigestOf(bytes);
}
