using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>Every command through libnbd's python bindings (nbdsh), checked byte by byte.</summary>
public class NbdshTests
{
    [TestCase("memory:64M")]
    [TestCase("file")]
    public void Pwrite_then_pread_returns_the_patterns_at_unaligned_offsets(string backing)
    {
        using var scratch = new ScratchDirectory();
        using var server = ServerProcess.Start(Export("disk", backing, scratch));

        NbdshScript.Run(server, """
            h = connect("disk")
            writes = [(0xab, 1000, 5000), (0xcd, 65535, 3), (0x5a, 131071, 200003), (0x01, 0, 1), (0x77, 8 << 20, 1 << 20)]
            for byte, offset, length in writes:
                h.pwrite(pattern(byte, length), offset)
            h.pwrite(pattern(0xee, 4097), 12345678, nbd.CMD_FLAG_FUA)
            writes.append((0xee, 12345678, 4097))
            # Read on a second connection, so the bytes came from the export, not a cache.
            r = connect("disk")
            for byte, offset, length in writes:
                got = r.pread(length, offset)
                assert got == pattern(byte, length), f"{length} bytes at {offset}: expected 0x{byte:02x}, got {bytes(got[:16]).hex()}..."
            assert r.pread(999, 1) == bytes(999), "the gap before the first write is not zero"
            assert r.pread(59535, 6000) == bytes(59535), "the gap between writes is not zero"
            assert r.pread(65533, 65538) == bytes(65533), "the gap after the 3-byte write is not zero"
            """);
    }

    [Test]
    public void A_write_of_the_maximum_block_size_reads_back_whole()
    {
        using var server = ServerProcess.Start("disk=memory:64M");

        NbdshScript.Run(server, """
            h = connect("disk")
            assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 << 20
            import os
            data = os.urandom(32 << 20)
            h.pwrite(data, 3)
            assert h.pread(32 << 20, 3) == data, "a 32 MiB write at offset 3 did not read back"
            assert h.pread(3, 0) == bytes(3) and h.pread(5, (32 << 20) + 3) == bytes(5), "bytes around it changed"
            """, TimeSpan.FromSeconds(60));
    }

    [Test]
    public void Flush_makes_writes_of_every_connection_reach_the_file()
    {
        using var scratch = new ScratchDirectory();
        var image = scratch.CreateEmptyImage("disk.img", 4 << 20);
        using var server = ServerProcess.Start($"disk=file:{image}");

        NbdshScript.Run(server, """
            h = connect("disk")
            h.pwrite(b"first connection", 4095)
            g = connect("disk")
            g.pwrite(b"second connection", 1 << 20)
            g.flush()
            h.shutdown()
            g.shutdown()
            """);

        using var file = File.OpenRead(image);
        Assert.Multiple(() =>
        {
            Assert.That(ReadAt(file, 4095, 16), Is.EqualTo("first connection"u8.ToArray()));
            Assert.That(ReadAt(file, 1 << 20, 17), Is.EqualTo("second connection"u8.ToArray()));
            Assert.That(file.Length, Is.EqualTo(4 << 20), "the file keeps its size");
        });
    }

    [TestCase("memory:64M")]
    [TestCase("file")]
    public void Trim_then_reads_return_zeros_and_leave_the_neighbours_alone(string backing)
    {
        using var scratch = new ScratchDirectory();
        using var server = ServerProcess.Start(Export("disk", backing, scratch));

        NbdshScript.Run(server, """
            h = connect("disk")
            h.pwrite(pattern(0x3c, 1 << 20), 0)
            h.trim(300001, 12345)                 # unaligned at both ends
            h.trim(131072, 524288)                # whole 64 KiB pages
            expected = bytearray(pattern(0x3c, 1 << 20))
            expected[12345:12345 + 300001] = bytes(300001)
            expected[524288:524288 + 131072] = bytes(131072)
            got = h.pread(1 << 20, 0)
            first = next((i for i in range(len(got)) if got[i] != expected[i]), None)
            assert first is None, f"byte {first} is 0x{got[first]:02x}, expected 0x{expected[first]:02x}"
            """);
    }

    [TestCase("memory:64M")]
    [TestCase("file")]
    public void Zero_with_no_hole_and_with_fast_zero_reads_back_zeros(string backing)
    {
        using var scratch = new ScratchDirectory();
        using var server = ServerProcess.Start(Export("disk", backing, scratch));

        NbdshScript.Run(server, """
            h = connect("disk")
            h.pwrite(pattern(0x99, 2 << 20), 0)
            h.zero(70001, 4097, nbd.CMD_FLAG_NO_HOLE)
            h.zero(262144, 524288, nbd.CMD_FLAG_FAST_ZERO)
            h.zero(100000, 1048577, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FUA)
            h.zero(1, (2 << 20) - 1)
            expected = bytearray(pattern(0x99, 2 << 20))
            for length, offset in [(70001, 4097), (262144, 524288), (100000, 1048577), (1, (1 << 21) - 1)]:
                expected[offset:offset + length] = bytes(length)
            got = h.pread(2 << 20, 0)
            first = next((i for i in range(len(got)) if got[i] != expected[i]), None)
            assert first is None, f"byte {first} is 0x{got[first]:02x}, expected 0x{expected[first]:02x}"
            """);
    }

    [Test]
    public void Zero_with_no_hole_keeps_written_pages_allocated_and_plain_zero_frees_them()
    {
        using var server = ServerProcess.Start("disk=memory:16M");

        var output = NbdshScript.Run(server, """
            h = connect("disk")
            h.pwrite(pattern(0x42, 1 << 20), 1 << 20)
            h.zero(1 << 20, 1 << 20, nbd.CMD_FLAG_NO_HOLE)
            assert h.pread(1 << 20, 1 << 20) == bytes(1 << 20)
            no_hole = extents(h, 1 << 20, 1 << 20)
            h.zero(1 << 20, 1 << 20)
            plain = extents(h, 1 << 20, 1 << 20)
            print(json.dumps({"no_hole": no_hole, "plain": plain}))
            """);

        using var json = JsonDocument.Parse(output);
        var noHole = Extents(json.RootElement.GetProperty("no_hole"));
        var plain = Extents(json.RootElement.GetProperty("plain"));
        Assert.Multiple(() =>
        {
            Assert.That(noHole.Select(e => e.Flags & 1), Is.All.Zero, "NO_HOLE must leave the range provisioned (no HOLE flag)");
            Assert.That(plain.Select(e => e.Flags), Is.All.EqualTo(3), "a plain zero of whole pages leaves hole,zero");
        });
    }

    [Test]
    public void Block_status_reports_data_where_written_and_hole_zero_elsewhere()
    {
        using var server = ServerProcess.Start("disk=memory:16M");

        var output = NbdshScript.Run(server, """
            h = connect("disk")
            assert h.can_meta_context("base:allocation")
            h.pwrite(pattern(0x10, 4096), 4 << 20)
            print(json.dumps(extents(h, 16 << 20, 0)))
            """);

        using var json = JsonDocument.Parse(output);
        var map = Extents(json.RootElement);
        long offset = 0;
        var data = new List<(long Offset, long Length)>();
        foreach (var (length, flags) in map)
        {
            Assert.That(flags, Is.EqualTo(0).Or.EqualTo(3), $"extent at {offset}: flags {flags}");
            if (flags == 0)
            {
                data.Add((offset, length));
            }

            offset += length;
        }

        Assert.That(offset, Is.LessThanOrEqualTo(16 << 20), "extents run past the request");
        Assert.That(data, Has.Count.EqualTo(1), $"one data extent: {string.Join(", ", map)}");
        Assert.Multiple(() =>
        {
            Assert.That(data[0].Offset, Is.LessThanOrEqualTo(4 << 20), "the data extent starts at or before the write");
            Assert.That(data[0].Offset + data[0].Length, Is.InRange((4 << 20) + 4096, 5 << 20), "and ends at or after it");
            Assert.That(map[0].Flags, Is.EqualTo(3), "the start of the disk is a hole");
        });
    }

    [Test]
    public void Multi_conn_write_on_one_handle_flush_on_a_second_read_on_a_third()
    {
        using var scratch = new ScratchDirectory();
        var image = scratch.CreateEmptyImage("disk.img", 8 << 20);
        using var server = ServerProcess.Start($"disk=file:{image}", "mem=memory:8M");

        NbdshScript.Run(server, """
            for export in ("disk", "mem"):
                writer, flusher, reader = connect(export), connect(export), connect(export)
                assert writer.can_multi_conn() and flusher.can_multi_conn(), f"{export}: multi-conn not advertised"
                data = bytes(range(256)) * 4096 + b"tail"
                writer.pwrite(data, 777)
                flusher.flush()
                got = reader.pread(len(data), 777)
                assert got == data, f"{export}: the third connection read other bytes"
                for handle in (writer, flusher, reader):
                    handle.shutdown()
            """);

        using var file = File.OpenRead(image);
        Assert.That(ReadAt(file, 777 + 256, 256), Is.EqualTo(Enumerable.Range(0, 256).Select(i => (byte)i).ToArray()));
    }

    [Test]
    public void Writes_to_a_read_only_export_fail_with_eperm_and_change_nothing()
    {
        using var scratch = new ScratchDirectory();
        var image = scratch.CreateEmptyImage("golden.img", 1 << 20);
        File.WriteAllBytes(image, Enumerable.Repeat((byte)0x61, 1 << 20).ToArray());
        using var server = ServerProcess.Start($"golden=file:{image}:ro");

        NbdshScript.Run(server, """
            import errno
            h = connect("golden")
            assert h.is_read_only()
            h.set_strict_mode(0)   # let the commands reach the server
            for name, call in [("write", lambda: h.pwrite(b"x", 0)),
                               ("trim", lambda: h.trim(4096, 0)),
                               ("zero", lambda: h.zero(4096, 0))]:
                try:
                    call()
                    raise AssertionError(f"{name} on a read-only export succeeded")
                except nbd.Error as e:
                    assert e.errnum == errno.EPERM, f"{name}: errno {e.errno}, expected EPERM"
            assert h.pread(4096, 0) == pattern(0x61, 4096)
            """);

        Assert.That(File.ReadAllBytes(image), Is.All.EqualTo((byte)0x61));
    }

    [Test]
    public void Requests_past_the_end_fail_and_the_connection_keeps_working()
    {
        using var server = ServerProcess.Start("disk=memory:1M");

        NbdshScript.Run(server, """
            import errno
            h = connect("disk")
            h.set_strict_mode(0)
            size = h.get_size()
            for name, call, expected in [
                    ("read", lambda: h.pread(10, size - 5), errno.EINVAL),
                    ("write", lambda: h.pwrite(b"y" * 10, size - 5), errno.ENOSPC),
                    ("trim", lambda: h.trim(10, size - 5), errno.EINVAL),
                    ("zero", lambda: h.zero(10, size - 5), errno.ENOSPC),
                    ("oversized write", lambda: h.pwrite(bytes(33 << 20), 0), errno.EINVAL)]:
                try:
                    call()
                    raise AssertionError(f"{name} past the end succeeded")
                except nbd.Error as e:
                    assert e.errnum == expected, f"{name}: errno {e.errno}, expected {errno.errorcode[expected]}"
            h.pwrite(b"still alive", size - 11)
            assert h.pread(11, size - 11) == b"still alive"
            assert h.pread(5, size - 16) == bytes(5), "a rejected write changed the disk"
            """);
    }

    private static string Export(string name, string backing, ScratchDirectory scratch) =>
        backing == "file" ? $"{name}=file:{scratch.CreateEmptyImage(name + ".img", 64 << 20)}" : $"{name}={backing}";

    private static List<(long Length, long Flags)> Extents(JsonElement list) =>
        list.EnumerateArray().Select(e => (e[0].GetInt64(), e[1].GetInt64())).ToList();

    private static byte[] ReadAt(FileStream file, long offset, int length)
    {
        var buffer = new byte[length];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }
}
