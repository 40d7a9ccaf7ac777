using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Instances;

/// <summary>
/// An instance reads through to its base (and zeros past the base's end); its maps tell
/// what is data and where it comes from (base:allocation, blockoverlay:layer: 1 upper,
/// 2 base, 0 zeros); a trimmed range of whole blocks becomes hole,zero and reads zeros,
/// even where the base has data.
/// </summary>
public class LayerTests
{
    private const int BaseSize = 3_000_000;          // not a multiple of 4 KiB
    private const long InstanceSize = 8 << 20;
    private const long BaseEndBlock = (BaseSize + 4095) / 4096 * 4096;
    private static readonly (long Offset, int Length)[] BaseData = [(0, 1 << 20), (2 << 20, BaseSize - (2 << 20))];

    private static readonly (long Offset, int Length)[] Writes =
    [
        ((5 << 20) + 1234, 10000),   // past the base
        ((3 << 19) + 7, 5000),       // over a hole of the base
        ((2 << 20) + 100000, 5000),  // over base data
        (2_999_000, 3000),           // across the base's end
    ];

    private static readonly (long Offset, int Length)[] Trims = [(2 << 20, 512 << 10), (5 << 20, 64 << 10)];

    [Test]
    public void Reads_go_through_to_the_base_and_the_maps_follow_writes_and_trims()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var baseImage = ws.WriteSparseFile("base.raw", BaseSize, seed: 21, BaseData);
        var baseHash = StoreWorkspace.Sha256(ws["base.raw"]);
        ws.CreateInstance("disk", ws["base.raw"], "8M");
        ws.CreateInstance("exact", ws["base.raw"]);
        using var server = StoreServer.Start(ws);

        // Untouched: the base, then zeros (also within the base's last, partial block).
        var model = ExportContent.Resized(baseImage, InstanceSize);
        Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "disk"), model), Is.Null, "8M instance before any write");
        Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "exact"), ExportContent.Resized(baseImage, BaseEndBlock)),
            Is.Null, "instance of the base's size (rounded up to 4 KiB) before any write");
        var pristine = ExportContent.Map(server, "disk");
        TestContext.Out.WriteLine($"map before writes: {ExportContent.Describe(pristine)}");
        Assert.Multiple(() =>
        {
            foreach (var (offset, length) in BaseData)
            {
                Assert.That(ExportContent.TypesOver(pristine, offset, length).Where(t => (t & 1) != 0), Is.Empty, $"base data at {offset}+{length} is not a hole");
            }

            Assert.That(ExportContent.TypesOver(pristine, 1 << 20, 1 << 20), Is.EquivalentTo(new[] { 3 }), "a hole of the base: hole,zero");
            Assert.That(ExportContent.TypesOver(pristine, BaseEndBlock, InstanceSize - BaseEndBlock), Is.EquivalentTo(new[] { 3 }), "past the base: hole,zero");
        });

        // Writes at unaligned offsets, not flushed (reads see them at once).
        var payload = ws.WriteRandomFile("payload.bin", 64 << 10, seed: 22);
        StoreNbdsh.Run(server, $$"""
            h = connect("disk")
            for i, (off, length) in enumerate({{Python(Writes)}}):
                h.pwrite(PAYLOAD[i * 10000:i * 10000 + length], off)
            """, ws["payload.bin"]);
        for (var i = 0; i < Writes.Length; i++)
        {
            payload.AsSpan(i * 10000, Writes[i].Length).CopyTo(model.AsSpan((int)Writes[i].Offset));
        }

        Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "disk"), model), Is.Null, "after the writes");
        var written = ExportContent.Map(server, "disk");
        var layers = ExportContent.Map(server, "disk", "blockoverlay:layer");
        TestContext.Out.WriteLine($"map after writes: {ExportContent.Describe(written)}\nlayers: {ExportContent.Describe(layers)}");
        Assert.Multiple(() =>
        {
            foreach (var (offset, length) in Writes)
            {
                Assert.That(ExportContent.TypesOver(written, offset, length), Is.EquivalentTo(new[] { 0 }), $"written {offset}+{length}: data");
                Assert.That(ExportContent.TypesOver(layers, offset, length), Is.EquivalentTo(new[] { 1 }), $"written {offset}+{length}: layer upper");
            }

            foreach (var (offset, length) in BaseData)
            {
                Assert.That(ExportContent.TypesOver(written, offset, length).Where(t => (t & 1) != 0), Is.Empty, $"base data at {offset}+{length} is not a hole");
            }

            Assert.That(ExportContent.TypesOver(layers, 0, 1 << 20), Is.EquivalentTo(new[] { 2 }), "the first MiB: layer base");
            // Past the base and away from the writes' blocks: hole,zero, layer zeros.
            foreach (var (offset, length) in new (long, long)[] { (BaseEndBlock + 4096, (5 << 20) - BaseEndBlock - 4096), ((5 << 20) + 3 * 4096, InstanceSize - (5 << 20) - 3 * 4096) })
            {
                Assert.That(ExportContent.TypesOver(written, offset, length), Is.EquivalentTo(new[] { 3 }), $"unwritten {offset}+{length} past the base: hole,zero");
                Assert.That(ExportContent.TypesOver(layers, offset, length), Is.EquivalentTo(new[] { 0 }), $"unwritten {offset}+{length} past the base: layer zeros");
            }
        });

        // Trim whole blocks: one range over base data and a write, one over a write past the base.
        StoreNbdsh.Run(server, $$"""
            h = connect("disk")
            for off, length in {{Python(Trims)}}:
                h.trim(length, off)
            """);
        foreach (var (offset, length) in Trims)
        {
            model.AsSpan((int)offset, length).Clear();
        }

        var trimmed = ExportContent.Map(server, "disk");
        var trimmedLayers = ExportContent.Map(server, "disk", "blockoverlay:layer");
        TestContext.Out.WriteLine($"map after trims: {ExportContent.Describe(trimmed)}\nlayers: {ExportContent.Describe(trimmedLayers)}");
        Assert.Multiple(() =>
        {
            foreach (var (offset, length) in Trims)
            {
                Assert.That(ExportContent.TypesOver(trimmed, offset, length), Is.EquivalentTo(new[] { 3 }), $"trimmed {offset}+{length}: hole,zero");
                Assert.That(ExportContent.TypesOver(trimmedLayers, offset, length), Does.Not.Contain(2), $"trimmed {offset}+{length}: the base must not show through");
            }

            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "disk"), model), Is.Null, "after the trims: zeros there, the rest unchanged");
            Assert.That(ExportContent.FirstDifference(ExportContent.CopyOut(server, ws, "exact"), ExportContent.Resized(baseImage, BaseEndBlock)),
                Is.Null, "the other instance of the same base is unchanged");
        });

        Assert.That(server.Terminate(), Is.Zero, server.ToString);
        Assert.That(StoreWorkspace.Sha256(ws["base.raw"]), Is.EqualTo(baseHash), "the base image was written");
    }

    private static string Python(IEnumerable<(long Offset, int Length)> ranges) =>
        "[" + string.Join(", ", ranges.Select(r => $"({r.Offset}, {r.Length})")) + "]";
}
