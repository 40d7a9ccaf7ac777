using BlockOverlay.Io;
using BlockOverlay.Store.Checking;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Tests.Crash;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// QoS settings (limits and weight) are stored with the instance: their bytes after the access
/// rules, their way through the journal and a checkpoint, the feature bit that keeps a build
/// without them from opening a store that has them, and old definitions reading as unlimited.
/// </summary>
public class QosSettingsTests
{
    private const int Block = UpperStore.BlockSize;

    // A definition as stores held it before access rules and QoS existed: id 4, 1 GiB, "web", no base, isolated, no quota.
    private const string Old = "04000000" + "0000004000000000" + "0000000000000000" + "0000000000000000" + "0300776562" + "0000" + "00" +
                               "0000000000000000";

    private static readonly InstanceQos Limited = new(200, 8L << 20, 300);

    private static async Task<MemoryDevice> NewStoreAsync()
    {
        var device = new MemoryDevice(4096L * Block);
        await UpperStore.CreateAsync(device, new StoreCreateOptions());
        return device;
    }

    [Test]
    public void Settings_follow_an_empty_rule_list_and_old_bytes_read_as_unlimited()
    {
        var d = new InstanceDefinition(4, "web", 1 << 30, null) { Qos = Limited };
        const string Settings = "C800000000000000" + "0000800000000000" + "2C010000";
        var bytes = new byte[DefinitionFormat.EncodedSize(d)];
        DefinitionFormat.Encode(bytes, d);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo(Old + "0000" + Settings));
        Assert.That(DefinitionFormat.Decode(bytes, "pinned"), Is.EqualTo(d));

        var old = DefinitionFormat.Decode(Convert.FromHexString(Old), "pinned");
        Assert.That(old.Qos, Is.EqualTo(InstanceQos.Default), "a definition written before QoS existed has no limits and the default weight");
        Assert.That(DefinitionFormat.EncodedSize(old), Is.EqualTo(Old.Length / 2), "default settings keep the old bytes");
    }

    [Test]
    public void Settings_after_rules_round_trip_and_a_bad_weight_or_length_is_refused()
    {
        var d = new InstanceDefinition(4, "web", 1 << 30, null) { Access = new InstanceAccess([new AccessRule(AccessKind.Uid, 7)]), Qos = Limited };
        var bytes = new byte[DefinitionFormat.EncodedSize(d)];
        DefinitionFormat.Encode(bytes, d);
        Assert.That(DefinitionFormat.Decode(bytes, "here"), Is.EqualTo(d));

        Assert.That(() => DefinitionFormat.Decode(Convert.FromHexString(Old + "0000" + "0000000000000000" + "0000000000000000" + "00000000"), "here"),
            Throws.InstanceOf<StoreFormatException>().With.Message.Contains("weight 0"));
        Assert.That(() => DefinitionFormat.Decode(Convert.FromHexString(Old + "0000" + "FF"), "here"),
            Throws.InstanceOf<StoreFormatException>().With.Message.Contains("QoS settings of 1 bytes"));
    }

    [TestCase(-1, 0, 100)]
    [TestCase(0, -1, 100)]
    [TestCase(0, 0, 0)]
    [TestCase(0, 0, 10001)]
    public void Negative_limits_and_weights_out_of_range_are_refused(long iops, long bps, int weight) =>
        Assert.That(() => new InstanceQos(iops, bps, weight), Throws.InstanceOf<InstanceException>());

    [Test]
    public async Task Settings_survive_journal_replay_and_a_checkpoint_and_the_store_checks_clean()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        await store.CreateInstanceAsync("a", 64 * Block, null, qos: Limited);
        await store.CreateInstanceAsync("b", 64 * Block, null);
        await store.SetQosAsync("b", new InstanceQos(0, 1 << 20));

        // As after kill -9: only the journal has them.
        await using (var replayed = await UpperStore.OpenAsync(device.Clone()))
        {
            Assert.That(replayed.Find("a")!.Definition.Qos, Is.EqualTo(Limited));
            Assert.That(replayed.Find("b")!.Definition.Qos, Is.EqualTo(new InstanceQos(0, 1 << 20)));
        }

        var afterCrash = await StoreChecker.CheckAsync(device.Clone());
        Assert.That(afterCrash.Clean, Is.True, CrashTestKit.Describe(afterCrash));

        await store.DisposeAsync(); // a checkpoint holds them now
        Assert.That((await SuperblockPublisher.ReadNewestAsync(device)).IncompatibleFeatures, Is.EqualTo(Superblock.QosFeature | Superblock.IncrementalCheckpointFeature),
            "a build that does not know QoS settings cannot skip their bytes: it must refuse the store");
        var closed = await StoreChecker.CheckAsync(device);
        Assert.That(closed.Clean, Is.True, CrashTestKit.Describe(closed));
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.Find("a")!.Definition.Qos, Is.EqualTo(Limited));
        Assert.That(reopened.Find("b")!.Definition.Qos.BpsLimit, Is.EqualTo(1 << 20));
    }

    [Test]
    public async Task A_store_without_settings_opens_unlimited_and_default_settings_clear_the_feature_bit()
    {
        var device = await NewStoreAsync();
        await using (var store = await UpperStore.OpenAsync(device))
        {
            await store.CreateInstanceAsync("plain", 64 * Block, null);
            await store.CreateInstanceAsync("a", 64 * Block, null, qos: Limited);
        }

        await using (var store = await UpperStore.OpenAsync(device))
        {
            Assert.That(store.Find("plain")!.Definition.Qos, Is.EqualTo(InstanceQos.Default));
            await store.SetQosAsync("a", InstanceQos.Default);
        }

        Assert.That((await SuperblockPublisher.ReadNewestAsync(device)).IncompatibleFeatures, Is.EqualTo(Superblock.IncrementalCheckpointFeature));
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.Find("a")!.Definition.Qos.IsDefault, Is.True);
    }

    [Test]
    public async Task A_clone_keeps_the_settings_of_its_source()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        await store.CreateInstanceAsync("a", 64 * Block, null, qos: Limited);
        var (clone, _) = await store.CloneInstanceAsync("a", "copy");
        Assert.That(clone.Definition.Qos, Is.EqualTo(Limited));
    }
}
