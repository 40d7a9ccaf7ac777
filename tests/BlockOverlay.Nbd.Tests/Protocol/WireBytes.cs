using System.Buffers.Binary;
using System.Text;

namespace BlockOverlay.Nbd.Tests.Protocol;

/// <summary>
/// Client messages built by hand from the specification's layouts, independently of the
/// server's own encoder, so a symmetric mistake cannot pass unnoticed.
/// </summary>
internal static class WireBytes
{
    public const ulong IHaveOpt = 0x49484156454F5054;
    public const uint RequestMagic = 0x25609513;

    public static byte[] U16(ushort v) { var b = new byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, v); return b; }

    public static byte[] U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return b; }

    public static byte[] U64(ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64BigEndian(b, v); return b; }

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    public static byte[] String(string s) => Concat(U32((uint)Encoding.UTF8.GetByteCount(s)), Encoding.UTF8.GetBytes(s));

    public static byte[] Option(uint option, byte[] data) => Concat(U64(IHaveOpt), U32(option), U32((uint)data.Length), data);

    public static byte[] Request(ushort flags, ushort type, ulong cookie, ulong offset, uint length) =>
        Concat(U32(RequestMagic), U16(flags), U16(type), U64(cookie), U64(offset), U32(length));

    public static byte[] GoData(string name, params ushort[] infos) =>
        Concat(String(name), U16((ushort)infos.Length), Concat(infos.Select(U16).ToArray()));

    public static byte[] MetaData(string name, params string[] queries) =>
        Concat(String(name), U32((uint)queries.Length), Concat(queries.Select(String).ToArray()));
}
