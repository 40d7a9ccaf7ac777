using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;

namespace BlockOverlay.Micro;

/// <summary>
/// One whole NBD request at a time through a served copy-on-write instance (<see cref="ServedInstance"/>):
/// a 4 KiB WRITE (of a block the cache holds dirty already: the steady state of a writer), a 1 MiB
/// WRITE of blocks held dirty likewise (where copies of the payload show), a 4 KiB READ of upper
/// data (written back to the store, not in the cache) and one of base data.
/// </summary>
/// <remarks>
/// MemoryDiagnoser counts what the whole process allocates per operation (the server's threads
/// included), which the machine's load cannot change; times are only for comparing two builds
/// side by side (perf/micro/compare.sh).
/// </remarks>
[MemoryDiagnoser]
public class RequestBenchmarks
{
    private const int Block = ServedInstance.Block;
    private const long WrittenBlock = 16;   // the WRITE benchmark's block, dirty in the cache
    private const long UpperBlock = 32;     // written and flushed: upper data in the store
    private const long BaseBlock = 48;      // never written: the base's data
    private const long LargeBlock = 1024;   // the 1 MiB WRITE's first block: 256 blocks dirty in the cache

    private ServedInstance _served = null!;
    private byte[] _write = null!, _writeLarge = null!, _readUpper = null!, _readBase = null!;
    private readonly byte[] _statusReply = new byte[16];
    // A structured reply's OFFSET_DATA chunk: 20 bytes of header, the offset, the data.
    private readonly byte[] _dataReply = new byte[20 + 8 + Block];

    [GlobalSetup]
    public async Task Start()
    {
        _served = await ServedInstance.StartAsync();
        _write = ServedInstance.Request(1, 1, WrittenBlock * Block, Block, 0x5a);
        _readUpper = ServedInstance.Request(0, 2, UpperBlock * Block, Block);
        _readBase = ServedInstance.Request(0, 3, BaseBlock * Block, Block);
        _served.Exchange(ServedInstance.Request(1, 4, UpperBlock * Block, Block, 0xa5), _statusReply);
        await _served.FlushAsync();
        _served.Exchange(_write, _statusReply);
        _writeLarge = ServedInstance.Request(1, 5, LargeBlock * Block, 1 << 20, 0x3c);
        _served.Exchange(_writeLarge, _statusReply);
    }

    [GlobalCleanup]
    public async Task Stop() => await _served.DisposeAsync();

    [Benchmark]
    public void Write4KiB()
    {
        _served.Exchange(_write, _statusReply);
        ExpectSuccess(_statusReply, 0x67446698);
    }

    [Benchmark]
    public void Write1MiB()
    {
        _served.Exchange(_writeLarge, _statusReply);
        ExpectSuccess(_statusReply, 0x67446698);
    }

    [Benchmark]
    public void ReadUpper4KiB()
    {
        _served.Exchange(_readUpper, _dataReply);
        ExpectSuccess(_dataReply, 0x668e33ef);
    }

    [Benchmark]
    public void ReadBase4KiB()
    {
        _served.Exchange(_readBase, _dataReply);
        ExpectSuccess(_dataReply, 0x668e33ef);
    }

    /// <summary>A simple reply with error 0, or a structured reply's one OFFSET_DATA chunk (type 1) marked done.</summary>
    private static void ExpectSuccess(byte[] reply, uint magic)
    {
        bool ok = BinaryPrimitives.ReadUInt32BigEndian(reply) == magic && (magic == 0x67446698
            ? BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)) == 0
            : BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(6)) == 1 && BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(16)) == 8 + Block);
        if (!ok)
        {
            throw new InvalidOperationException("the server's reply is not the expected success");
        }
    }
}
