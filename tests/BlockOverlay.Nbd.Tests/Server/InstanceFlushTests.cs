using BlockOverlay.Engine.Cache;
using BlockOverlay.Engine.Instances;
using BlockOverlay.Io;
using BlockOverlay.LibNbd;
using BlockOverlay.Store;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>
/// DESIGN.md, invariants 1 and 9 over real NBD connections to an instance: a FLUSH on one connection
/// covers writes acknowledged on another (what NBD_FLAG_CAN_MULTI_CONN promises), and a client
/// that disconnects with dirty data has it written back and committed. Each is checked on a
/// copy of the store device taken at that moment: a kill -9 of the server.
/// </summary>
public class InstanceFlushTests
{
    private const int Block = 4096;
    private MemoryDevice _device = null!;
    private UpperStore _store = null!;
    private WriteBackCache _cache = null!;
    private InstanceExport _export = null!;
    private TestServer _server = null!;

    [SetUp]
    public async Task Start()
    {
        _device = new MemoryDevice(32L << 20);
        await UpperStore.CreateAsync(_device);
        _store = await UpperStore.OpenAsync(_device);
        await _store.CreateInstanceAsync("vm", 64 * Block, null);
        await _store.CreateInstanceAsync("neighbour", 64 * Block, null);
        _cache = new WriteBackCache(_store, CacheOptions.FlushOnly);
        _export = await InstanceExport.OpenAsync(_cache, _store.Find("vm")!);
        _server = new TestServer(("vm", _export), ("neighbour", await InstanceExport.OpenAsync(_cache, _store.Find("neighbour")!)));
    }

    [TearDown]
    public async Task Stop()
    {
        await _server.DisposeAsync();
        await _cache.DisposeAsync();
        await _store.DisposeAsync();
        await _device.DisposeAsync();
    }

    [Test]
    public async Task A_flush_on_one_connection_makes_writes_acknowledged_on_another_durable()
    {
        using var writer = Connect("vm");
        using var flusher = Connect("vm");
        Assert.That(writer.CanMultiConn(), Is.True);
        writer.Pwrite(Pattern(3 * Block, 0x31), 2 * Block);
        flusher.Flush();

        byte[] read = await ReadAfterKillAsync("vm", 0, 8 * Block);
        Assert.That(read.AsSpan(2 * Block, 3 * Block).IndexOfAnyExcept((byte)0x31), Is.EqualTo(-1), "the other connection's write after the flush and a kill");
    }

    [Test]
    public async Task A_client_that_disconnects_with_dirty_data_leaves_it_written_back_and_committed()
    {
        using (var leaving = Connect("vm"))
        {
            leaving.Pwrite(Pattern(4 * Block, 0x42), 0);
            Assert.That(_export.DirtyBytes, Is.EqualTo(4 * Block), "precondition: acknowledged from the cache");
            leaving.Shutdown();
        }

        // The server notices the disconnect on its own schedule: wait for the write-back.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while ((_export.DirtyBytes > 0 || _store.Counters[WriteReason.Journal] == 0) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10);
        }

        byte[] read = await ReadAfterKillAsync("vm", 0, 4 * Block);
        Assert.That(read.AsSpan().IndexOfAnyExcept((byte)0x42), Is.EqualTo(-1), "the departed client's writes after a kill");
    }

    [Test]
    public async Task A_flush_of_one_instance_leaves_the_neighbours_dirty_data_in_the_cache()
    {
        using var neighbour = Connect("neighbour");
        using var vm = Connect("vm");
        neighbour.Pwrite(Pattern(8 * Block, 0x55), 0);
        vm.Pwrite(Pattern(Block, 0x66), 0);
        vm.Flush();

        Assert.That(_export.Counters.FlushDataBytes, Is.EqualTo(Block));
        Assert.That(_cache.DirtyBytes, Is.EqualTo(8 * Block), "the neighbour's data is still dirty");
        byte[] read = await ReadAfterKillAsync("neighbour", 0, 8 * Block);
        Assert.That(read.AsSpan().IndexOfAnyExcept((byte)0), Is.EqualTo(-1), "the neighbour, never flushed, reads as before after a kill");
    }

    private NbdClient Connect(string export)
    {
        var client = new NbdClient();
        client.ConnectUri(_server.Uri(export));
        return client;
    }

    /// <summary>Opens a copy of the store device as it is now (a kill -9) and reads an instance from it.</summary>
    private async Task<byte[]> ReadAfterKillAsync(string instance, long offset, int length)
    {
        await using var store = await UpperStore.OpenAsync(_device.Clone());
        await using var cache = new WriteBackCache(store, CacheOptions.FlushOnly);
        await using var export = await InstanceExport.OpenAsync(cache, store.Find(instance)!);
        byte[] read = new byte[length];
        await export.ReadAsync(offset, read);
        return read;
    }

    private static byte[] Pattern(int length, byte value)
    {
        byte[] data = new byte[length];
        Array.Fill(data, value);
        return data;
    }
}
