using BlockOverlay.Engine.Exports;
using BlockOverlay.LibNbd;
using static BlockOverlay.Nbd.Tests.Server.Clients;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>Every command and flag, through libnbd as a real client.</summary>
public class CommandTests
{
    private const int Size = 16 << 20;
    private TestServer _server = null!;
    private NbdClient _client = null!;

    [SetUp]
    public void Start()
    {
        _server = new TestServer(("disk", new MemoryExport(Size)));
        _client = Connect(_server, "disk");
    }

    [TearDown]
    public async Task Stop()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    [Test]
    public void The_handshake_advertises_what_the_export_can_do()
    {
        Assert.Multiple(() =>
        {
            Assert.That(_client.GetSize(), Is.EqualTo(Size));
            Assert.That(_client.GetStructuredRepliesNegotiated(), Is.True);
            Assert.That(_client.CanFlush() && _client.CanFua() && _client.CanTrim() && _client.CanZero(), Is.True);
            Assert.That(_client.CanFastZero() && _client.CanCache() && _client.CanDf() && _client.CanMultiConn(), Is.True);
            Assert.That(_client.IsReadOnly(), Is.False);
            Assert.That(_client.CanMetaContext(MetaContexts.BaseAllocation), Is.True);
            Assert.That(_client.GetBlockSize(BlockSizeConstraint.Minimum), Is.EqualTo(1));
            Assert.That(_client.GetBlockSize(BlockSizeConstraint.Preferred), Is.EqualTo(4096));
            Assert.That(_client.GetBlockSize(BlockSizeConstraint.Maximum), Is.EqualTo(32 << 20));
        });
    }

    [TestCase(0UL, 4096, CommandFlags.None)]
    [TestCase(1UL, 1, CommandFlags.Fua)]
    [TestCase(65535UL, 70000, CommandFlags.None)]
    [TestCase((ulong)Size - 777, 777, CommandFlags.Fua)]
    public void Writes_read_back_at_any_offset_with_and_without_fua(ulong offset, int length, CommandFlags flags)
    {
        var data = Pattern(length, (int)offset);
        _client.Pwrite(data, offset, flags);
        Assert.That(_client.Read(length, offset), Is.EqualTo(data));
        var unfragmented = new byte[length];
        var chunks = _client.PreadStructured(unfragmented, offset, CommandFlags.Df);
        Assert.That(unfragmented, Is.EqualTo(data), "DF read");
        Assert.That(chunks, Has.Count.EqualTo(1), "DF read sent one chunk");
        if (offset > 0)
        {
            Assert.That(_client.Read(1, offset - 1), Is.EqualTo(new byte[1]), "the byte before is untouched");
        }
    }

    [Test]
    [Category("Slow")] // left out of make check
    public async Task The_largest_payload_round_trips()
    {
        var data = Pattern(32 << 20, 3);
        await using var big = new TestServer(("big", new MemoryExport(64 << 20)));
        using var client = Connect(big, "big");
        client.Pwrite(data, 4096);
        Assert.That(client.Read(data.Length, 4096), Is.EqualTo(data));
    }

    [Test]
    public void Flush_and_cache_succeed()
    {
        _client.Pwrite([1, 2, 3], 10);
        Assert.DoesNotThrow(() => _client.Flush());
        Assert.DoesNotThrow(() => _client.Cache(4096, 0));
        Assert.That(_client.Read(3, 10), Is.EqualTo(new byte[] { 1, 2, 3 }));
    }

    [Test]
    public void Fua_is_accepted_on_every_command()
    {
        // "the server MUST accept all commands with this bit set"; libnbd only sends it
        // on the others with its flag checks off.
        using var client = Connect(_server, "disk", StrictMode.None);
        client.Pwrite([4, 5], 0, CommandFlags.Fua);
        Assert.DoesNotThrow(() => client.Flush(CommandFlags.Fua));
        Assert.DoesNotThrow(() => client.Cache(2, 0, CommandFlags.Fua));
        Assert.That(client.Read(2, 0, CommandFlags.Fua), Is.EqualTo(new byte[] { 4, 5 }));
        Assert.That(client.BlockStatus(2, 0, CommandFlags.Fua), Contains.Key(MetaContexts.BaseAllocation));
    }

    [TestCase(CommandFlags.None)]
    [TestCase(CommandFlags.Fua)]
    public void Trim_makes_the_range_read_as_zeros(CommandFlags flags)
    {
        _client.Pwrite(Pattern(200_000, 1), 0);
        _client.Trim(100_000, 50_000, flags);
        var after = _client.Read(200_000, 0);
        Assert.That(after.AsSpan(50_000, 100_000).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(after.AsSpan(0, 50_000).ToArray(), Is.EqualTo(Pattern(200_000, 1).AsSpan(0, 50_000).ToArray()));
    }

    [TestCase(CommandFlags.None)]
    [TestCase(CommandFlags.NoHole)]
    [TestCase(CommandFlags.FastZero)]
    [TestCase(CommandFlags.NoHole | CommandFlags.FastZero | CommandFlags.Fua)]
    public void Write_zeroes_makes_the_range_read_as_zeros(CommandFlags flags)
    {
        _client.Pwrite(Pattern(300_000, 2), 0);
        _client.Zero(131_072, 65_536, flags);
        var after = _client.Read(300_000, 0);
        Assert.That(after.AsSpan(65_536, 131_072).ContainsAnyExcept((byte)0), Is.False);
        Assert.That(after[65_535], Is.EqualTo(Pattern(300_000, 2)[65_535]));
        Assert.That(after[196_608], Is.EqualTo(Pattern(300_000, 2)[196_608]));
    }

    [Test]
    public void A_structured_read_of_a_sparse_range_sends_holes_and_data()
    {
        _client.Pwrite(Pattern(4096, 9), 8192);
        var buffer = new byte[16384];
        var chunks = _client.PreadStructured(buffer, 0);
        Assert.That(chunks.Select(c => (c.Offset, c.Length, c.Status)), Is.EqualTo(new[]
        {
            (0UL, 8192UL, ReadChunkStatus.Hole),
            (8192UL, 4096UL, ReadChunkStatus.Data),
            (12288UL, 4096UL, ReadChunkStatus.Hole),
        }));
        Assert.That(buffer.AsSpan(8192, 4096).ToArray(), Is.EqualTo(Pattern(4096, 9)));

        var single = _client.PreadStructured(buffer, 0, CommandFlags.Df);
        Assert.That(single, Has.Count.EqualTo(1), "DF: one content chunk");
    }

    [Test]
    public void Block_status_reports_holes_and_data_and_honours_req_one()
    {
        const ulong page = MemoryExport.PageSize;
        _client.Pwrite(Pattern((int)page, 4), page);
        var all = _client.BlockStatus(4 * page, 0)[MetaContexts.BaseAllocation];
        Assert.That(all.Select(e => (e.Length, e.Flags)), Is.EqualTo(new[]
        {
            ((uint)page, 3u),
            ((uint)page, 0u),
            ((uint)(2 * page), 3u),
        }));

        var one = _client.BlockStatus(4 * page, 0, CommandFlags.ReqOne)[MetaContexts.BaseAllocation];
        Assert.That(one.Select(e => (e.Length, e.Flags)), Is.EqualTo(new[] { ((uint)page, 3u) }));
    }

    [Test]
    public void Disconnect_is_clean()
    {
        _client.Pwrite([5], 0, CommandFlags.Fua);
        Assert.DoesNotThrow(() => _client.Shutdown());
        Assert.That(_server.Log, Has.Some.Contains("client sent DISC"));
    }
}
