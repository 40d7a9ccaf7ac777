using System.Buffers.Binary;

namespace BlockOverlay.Store.Format;

// The fields of the on-disk headers. Each header declares its fields once, in one table
// (SuperblockLayout, BatchLayout, ...), each field placed at the end of the one before; its
// encoder and its decoder both read that table, so no offset is written twice. The bytes are
// drawn in docs/FORMAT.md, and LayoutTests pin every offset and size. All little-endian.

/// <summary>A one-byte field at <see cref="Offset"/> bytes.</summary>
/// <remarks>
/// Past the end of the bytes it throws ArgumentOutOfRangeException, as the wider fields do (their
/// slice does): the decoders turn that one exception into "too short" (StoreFormatException).
/// </remarks>
public readonly record struct U8Field(int Offset)
{
    public int End => Offset + 1;
    public byte Read(ReadOnlySpan<byte> header) => header.Slice(Offset, 1)[0];
    public void Write(Span<byte> header, byte value) => header[Offset] = value;
}

/// <summary>A little-endian u16 at <see cref="Offset"/> bytes.</summary>
public readonly record struct U16Field(int Offset)
{
    public int End => Offset + 2;
    public ushort Read(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt16LittleEndian(header[Offset..]);
    public void Write(Span<byte> header, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(header[Offset..], value);
}

/// <summary>A little-endian u32 at <see cref="Offset"/> bytes.</summary>
public readonly record struct U32Field(int Offset)
{
    public int End => Offset + 4;
    public uint Read(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt32LittleEndian(header[Offset..]);
    public void Write(Span<byte> header, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(header[Offset..], value);
}

/// <summary>A little-endian 64-bit field at <see cref="Offset"/> bytes, read as unsigned or signed.</summary>
public readonly record struct U64Field(int Offset)
{
    public int End => Offset + 8;
    public ulong Read(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt64LittleEndian(header[Offset..]);
    public long ReadSigned(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadInt64LittleEndian(header[Offset..]);
    public void Write(Span<byte> header, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(header[Offset..], value);
    public void Write(Span<byte> header, long value) => BinaryPrimitives.WriteInt64LittleEndian(header[Offset..], value);
}

/// <summary><see cref="Size"/> raw bytes at <see cref="Offset"/> (a magic, an id, reserved space).</summary>
public readonly record struct BytesField(int Offset, int Size)
{
    public int End => Offset + Size;
    public Span<byte> Of(Span<byte> header) => header.Slice(Offset, Size);
    public ReadOnlySpan<byte> Of(ReadOnlySpan<byte> header) => header.Slice(Offset, Size);
}
