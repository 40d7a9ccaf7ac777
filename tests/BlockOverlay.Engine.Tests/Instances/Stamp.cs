using System.Buffers.Binary;
using BlockOverlay.Engine.Instances;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>Encodes and decodes <see cref="ContentMode.Stamped"/> words.</summary>
internal static class Stamp
{
    private const byte Tag = 0xB5;

    public static ulong Word(int instance, long op, long position) =>
        ((ulong)Tag << 56) | ((ulong)(instance & 0xFF) << 48) | ((ulong)(op & 0xFFFFFF) << 24) | ((ulong)(position / 8) & 0xFFFFFF);

    /// <summary>Fills <paramref name="destination"/>, which lands at virtual byte <paramref name="offset"/>.</summary>
    public static void Fill(Span<byte> destination, int instance, long op, long offset)
    {
        Span<byte> word = stackalloc byte[8];
        for (int i = 0; i < destination.Length; i++)
        {
            long position = offset + i;
            BinaryPrimitives.WriteUInt64LittleEndian(word, Word(instance, op, position & ~7L));
            destination[i] = word[(int)(position & 7)];
        }
    }

    /// <summary>The instance and operation an aligned word names, if it is a stamp of this position.</summary>
    public static (int Instance, long Op)? Decode(ulong word, long position)
    {
        if ((byte)(word >> 56) != Tag || (long)(word & 0xFFFFFF) != ((position / 8) & 0xFFFFFF))
        {
            return null;
        }

        return ((int)((word >> 48) & 0xFF), (long)((word >> 24) & 0xFFFFFF));
    }
}
