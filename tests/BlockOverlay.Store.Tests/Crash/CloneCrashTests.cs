using BlockOverlay.Io;
using BlockOverlay.Store.Maps;

namespace BlockOverlay.Store.Tests.Crash;

/// <summary>
/// A power cut while an instance is being cloned leaves either no clone or the whole clone,
/// never an instance under the new name that reads only part of its source (found by
/// make torture: the clone was made durable first and filled in after).
/// </summary>
public class CloneCrashTests
{
    private const int Block = UpperStore.BlockSize;
    private const int SourceBlocks = 96;

    [TestCase(1)]
    [TestCase(2)]
    public async Task After_a_power_cut_during_a_clone_the_clone_is_absent_or_whole(int seed)
    {
        var power = new PowerLossDevice(await CrashTestKit.NewStoreAsync(dataBlocks: 600, journalBlocks: 16));
        var images = new List<MemoryDevice>();
        var device = new CrashPointDevice(power, new Random(seed), (image, _, _, _, _) => images.Add(image));
        byte[] source = new byte[SourceBlocks * Block];
        new Random(seed).NextBytes(source);
        await using (var store = await UpperStore.OpenAsync(device))
        {
            var from = await store.CreateInstanceAsync("source", SourceBlocks * Block, null);
            await store.WriteAsync(from, 0, source);
            await store.CommitAsync(from);
            device.Armed = true;
            await store.CloneInstanceAsync("source", "clone", null, CancellationToken.None);
            device.Armed = false;
            images.Add(power.Crash(new Random(seed))); // a power cut once the clone has returned
        }

        Assert.That(images, Is.Not.Empty);
        int absent = 0, whole = 0;
        for (int i = 0; i < images.Count; i++)
        {
            await using var recovered = await UpperStore.OpenAsync(images[i]);
            if (recovered.Find("clone") is not { } clone)
            {
                absent++;
                continue;
            }

            var bytes = new byte[SourceBlocks * Block];
            var layout = new List<MappedExtent>();
            await recovered.ReadAsync(clone, 0, bytes, layout);
            Assert.That(layout.All(e => e.Kind == ExtentKind.Upper), Is.True, $"crash image {i} of {images.Count}: the clone is only partly there");
            Assert.That(bytes, Is.EqualTo(source), $"crash image {i} of {images.Count}: the clone does not read as its source");
            whole++;
        }

        TestContext.Out.WriteLine($"{images.Count} crash images: clone absent in {absent}, whole in {whole}");
        Assert.That(whole, Is.Positive, "a power cut after the clone returned keeps it");
    }
}
