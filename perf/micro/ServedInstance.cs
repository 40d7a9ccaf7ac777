using System.Buffers.Binary;
using System.Net.Sockets;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using BlockOverlay.Store.Format;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Micro;

/// <summary>
/// One copy-on-write instance served by the real server (<see cref="NbdServer"/>: accept loop,
/// handshake, the connection's reader and writer) on a unix socket, and one client connection to
/// it that has finished the handshake with structured replies. The store is an O_DIRECT file
/// (the io_uring backend where the kernel allows one), the base a file of random bytes, the cache
/// writes back only on a flush: what a request does is exactly the request's work.
/// </summary>
/// <remarks>
/// The client sends prebuilt bytes and receives into a buffer of its own with blocking socket
/// calls, which allocate nothing, so whatever the process allocates per operation is the server's.
/// </remarks>
internal sealed class ServedInstance : IAsyncDisposable
{
    public const int Block = 4096;
    public const long Size = 64L << 20;
    private const int BaseSize = 1 << 20;

    private readonly string _directory;
    private readonly FileDevice _device;
    private readonly UpperStore _store;
    private readonly WriteBackCache _cache;
    private readonly InstanceExport _export;
    private readonly NbdServer _server;
    private readonly Socket _client;

    private ServedInstance(string directory, FileDevice device, UpperStore store, WriteBackCache cache, InstanceExport export,
        NbdServer server, Socket client)
    {
        _directory = directory;
        _device = device;
        _store = store;
        _cache = cache;
        _export = export;
        _server = server;
        _client = client;
    }

    public static async Task<ServedInstance> StartAsync()
    {
        // In TMPDIR, which must be a disk file system: O_DIRECT refuses tmpfs.
        string directory = Directory.CreateTempSubdirectory("blockoverlay-micro-").FullName;
        string basePath = Path.Combine(directory, "base.img");
        byte[] content = new byte[BaseSize];
        new Random(1).NextBytes(content);
        await File.WriteAllBytesAsync(basePath, content);
        BaseIdentity identity;
        await using (var image = BaseImage.Open(basePath))
        {
            identity = await image.IdentifyAsync();
        }

        var device = await FileDevice.CreateAsync(Path.Combine(directory, "store"), 256L << 20);
        await UpperStore.CreateAsync(device);
        var store = await UpperStore.OpenAsync(device);
        var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        var export = await InstanceExport.OpenAsync(cache, await store.CreateInstanceAsync("vm", Size, identity));
        var catalog = new ExportCatalog();
        catalog.Add("vm", export);
        var server = new NbdServer(catalog, new NbdServerOptions(), NullLoggerFactory.Instance);
        string socketPath = Path.Combine(directory, "nbd.sock");
        server.Listen(ListenAddress.Parse("unix:" + socketPath));
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // Connected synchronously: the socket stays blocking, and its blocking calls allocate nothing
        // (after an asynchronous connect .NET emulates them on a non-blocking socket, allocating per wait).
        client.Connect(new UnixDomainSocketEndPoint(socketPath));
        var served = new ServedInstance(directory, device, store, cache, export, server, client);
        served.Negotiate();
        return served;
    }

    /// <summary>Sends one request (and its payload) and takes its whole reply into <paramref name="reply"/>.</summary>
    public void Exchange(ReadOnlySpan<byte> request, Span<byte> reply)
    {
        while (!request.IsEmpty)
        {
            request = request[_client.Send(request)..];
        }

        Receive(reply);
    }

    /// <summary>Makes what was written so far durable in the store and leaves the cache empty (its blocks become upper data).</summary>
    public ValueTask FlushAsync() => _export.FlushAsync();

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        await _export.DisposeAsync();
        await _cache.DisposeAsync();
        await _store.DisposeAsync();
        await _device.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>A transmission request: 28 bytes, then the payload if any.</summary>
    public static byte[] Request(ushort command, ulong cookie, long offset, int length, byte payloadByte = 0)
    {
        byte[] request = new byte[28 + (command == 1 ? length : 0)];
        BinaryPrimitives.WriteUInt32BigEndian(request, 0x25609513);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), command);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(16), (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(24), (uint)length);
        request.AsSpan(28).Fill(payloadByte);
        return request;
    }

    /// <summary>Greeting, client flags (fixed newstyle, no zeroes), STRUCTURED_REPLY, GO "vm".</summary>
    private void Negotiate()
    {
        Span<byte> greeting = stackalloc byte[18];
        Receive(greeting);
        Span<byte> flags = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(flags, 3);
        Send(flags);
        Send(Option(8, []));
        ReadOptionReplies();
        byte[] name = "vm"u8.ToArray();
        byte[] go = new byte[4 + name.Length + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        Send(Option(7, go));
        ReadOptionReplies();
    }

    private static byte[] Option(uint option, byte[] data)
    {
        byte[] bytes = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, 0x49484156454F5054);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(12), (uint)data.Length);
        data.CopyTo(bytes, 16);
        return bytes;
    }

    /// <summary>Option replies up to the final one: ACK, or an error, which ends the benchmark.</summary>
    private void ReadOptionReplies()
    {
        byte[] header = new byte[20];
        while (true)
        {
            Receive(header);
            uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            Receive(new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16))]);
            if (type == 1)
            {
                return;
            }

            if ((type & 0x80000000) != 0)
            {
                throw new InvalidOperationException($"the server refused an option: reply type 0x{type:x}");
            }
        }
    }

    private void Send(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            bytes = bytes[_client.Send(bytes)..];
        }
    }

    private void Receive(Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int received = _client.Receive(buffer);
            if (received == 0)
            {
                throw new InvalidOperationException("the server closed the connection");
            }

            buffer = buffer[received..];
        }
    }
}
