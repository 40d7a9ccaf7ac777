using System.Buffers.Binary;
using System.Text;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>
/// What a client sends, as bytes (big-endian, as on the wire): the handshake prefix of the
/// request target and the seed corpus are made of these, so both are real client streams.
/// </summary>
internal sealed class ClientBytes
{
    private readonly List<byte> _bytes = [];

    public byte[] ToArray() => [.. _bytes];

    public ClientBytes Flags(ClientFlags flags) => U32((uint)flags);

    public ClientBytes Option(NbdOption option, ReadOnlySpan<byte> data)
    {
        U64(NbdWire.OptionMagic).U32((uint)option).U32((uint)data.Length);
        _bytes.AddRange(data);
        return this;
    }

    /// <summary>INFO or GO: the name and the information requests.</summary>
    public ClientBytes Choose(NbdOption option, string name, params InfoType[] requests)
    {
        var data = new ClientBytes().String(name).U16((ushort)requests.Length);
        foreach (var request in requests)
        {
            data.U16((ushort)request);
        }

        return Option(option, data.ToArray());
    }

    /// <summary>LIST_META_CONTEXT or SET_META_CONTEXT: the name and the queries.</summary>
    public ClientBytes MetaContext(NbdOption option, string name, params string[] queries)
    {
        var data = new ClientBytes().String(name).U32((uint)queries.Length);
        foreach (string query in queries)
        {
            data.String(query);
        }

        return Option(option, data.ToArray());
    }

    public ClientBytes Request(NbdCommand command, CommandFlags flags, ulong cookie, ulong offset, uint length, ReadOnlySpan<byte> payload = default)
    {
        U32(NbdWire.RequestMagic).U16((ushort)flags).U16((ushort)command).U64(cookie).U64(offset).U32(length);
        _bytes.AddRange(payload);
        return this;
    }

    private ClientBytes String(string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        U32((uint)bytes.Length);
        _bytes.AddRange(bytes);
        return this;
    }

    private ClientBytes U16(ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, value);
        _bytes.AddRange(b);
        return this;
    }

    private ClientBytes U32(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        _bytes.AddRange(b);
        return this;
    }

    private ClientBytes U64(ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        _bytes.AddRange(b);
        return this;
    }
}
