namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>
/// What an export's bytes must be: every write the server acknowledged, byte by byte. A
/// range whose fate the client cannot know (a write cut off by a close, a trim, which may or
/// may not zero) is marked unknown and not checked until written again.
/// </summary>
internal sealed class ExportModel(int size)
{
    private readonly byte[] _bytes = new byte[size];
    private readonly bool[] _known = Enumerable.Repeat(true, size).ToArray();

    public int Size => size;

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        data.CopyTo(_bytes.AsSpan((int)offset));
        _known.AsSpan((int)offset, data.Length).Fill(true);
    }

    public void Zero(ulong offset, int length)
    {
        _bytes.AsSpan((int)offset, length).Clear();
        _known.AsSpan((int)offset, length).Fill(true);
    }

    public void Forget(ulong offset, int length) => _known.AsSpan((int)offset, length).Clear();

    /// <summary>The first byte where <paramref name="data"/> read at <paramref name="offset"/> contradicts the model, or -1.</summary>
    public int FirstMismatch(ulong offset, ReadOnlySpan<byte> data)
    {
        for (int i = 0; i < data.Length; i++)
        {
            int at = (int)offset + i;
            if (_known[at] && _bytes[at] != data[i])
            {
                return at;
            }
        }

        return -1;
    }
}
