using BlockOverlay.Io;
using BlockOverlay.Store.Checking;
using BlockOverlay.Store.Checkpoints;
using BlockOverlay.Store.Format;
using BlockOverlay.Store.Tests.Crash;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// Access rules are stored with the instance: their bytes, their way through the journal and a
/// checkpoint, the feature bit that keeps a build without rules from opening a store that has
/// them, and a clean store check.
/// </summary>
public class AccessRuleTests
{
    private const int Block = UpperStore.BlockSize;

    private static readonly InstanceAccess UidAndSubject = new([new AccessRule(AccessKind.Uid, 1000), AccessRule.Certificate("CN=a")]);

    private static async Task<MemoryDevice> NewStoreAsync()
    {
        var device = new MemoryDevice(4096L * Block);
        await UpperStore.CreateAsync(device, new StoreCreateOptions());
        return device;
    }

    [Test]
    public void A_definition_with_rules_is_the_old_bytes_followed_by_the_rule_list()
    {
        var d = new InstanceDefinition(4, "web", 1 << 30, null) { Access = UidAndSubject };
        const string Old = "04000000" + "0000004000000000" + "0000000000000000" + "0000000000000000" + "0300776562" + "0000" + "00" +
                           "0000000000000000";
        const string Rules = "0200" + "01" + "0400" + "E8030000" + "03" + "0400" + "434E3D61";
        var bytes = new byte[DefinitionFormat.EncodedSize(d)];
        DefinitionFormat.Encode(bytes, d);
        Assert.That(Convert.ToHexString(bytes), Is.EqualTo(Old + Rules));
        Assert.That(DefinitionFormat.Decode(bytes, "pinned"), Is.EqualTo(d));

        var open = DefinitionFormat.Decode(Convert.FromHexString(Old), "pinned");
        Assert.That(open.Access.IsOpen, Is.True, "a definition written before rules existed is open to everyone");
        Assert.That(DefinitionFormat.EncodedSize(open), Is.EqualTo(Old.Length / 2), "an open definition keeps the old bytes");
    }

    [Test]
    public void A_rule_of_an_unknown_kind_or_bytes_after_the_rules_are_refused()
    {
        const string Start = "04000000" + "0000004000000000" + "0000000000000000" + "0000000000000000" + "0300776562" + "0000" + "00" +
                             "0000000000000000";
        Assert.That(() => DefinitionFormat.Decode(Convert.FromHexString(Start + "0100" + "09" + "0100" + "00"), "here"),
            Throws.InstanceOf<StoreFormatException>().With.Message.Contains("kind 9"));
        Assert.That(() => DefinitionFormat.Decode(Convert.FromHexString(Start + "0000" + "FF"), "here"),
            Throws.InstanceOf<StoreFormatException>().With.Message.Contains("QoS settings of 1 bytes"), "what follows the rules can only be QoS settings");
    }

    /// <summary>
    /// More rules than an instance may hold, read from the store, are a format error there: the
    /// decoder threw InstanceException (the limit's error for the CLI), which recovery and the
    /// checker do not expect from bytes.
    /// </summary>
    [Test]
    public void More_rules_than_an_instance_holds_are_refused_as_a_format_error()
    {
        const int Count = InstanceAccess.MaxRules + 1;
        var bytes = new byte[2 + (Count * 7)];
        new U16Field(0).Write(bytes, Count);
        for (int i = 0; i < Count; i++)
        {
            new U8Field(2 + (i * 7)).Write(bytes, (byte)AccessKind.Uid);
            new U16Field(3 + (i * 7)).Write(bytes, 4);
            new U32Field(5 + (i * 7)).Write(bytes, (uint)i);
        }

        Assert.That(() => AccessFormat.Decode(bytes, "here"),
            Throws.InstanceOf<StoreFormatException>().With.Message.Contains($"{Count} access rules"));
    }

    [TestCase("uid:1000", AccessKind.Uid, 1000u, "")]
    [TestCase("gid:0", AccessKind.Gid, 0u, "")]
    [TestCase("cert:CN=tenant-a,O=Example", AccessKind.CertificateSubject, 0u, "CN=tenant-a,O=Example")]
    public void Rules_parse_from_and_print_as_what_the_cli_takes(string text, AccessKind kind, uint id, string subject)
    {
        var rule = AccessRule.Parse(text);
        Assert.That(rule, Is.EqualTo(new AccessRule(kind, id, subject)));
        Assert.That(rule.ToString(), Is.EqualTo(text));
    }

    [TestCase("uid:-1")]
    [TestCase("uid:")]
    [TestCase("uid:1e3")]
    [TestCase("user:1")]
    [TestCase("cert:")]
    [TestCase("1000")]
    public void Anything_else_is_not_a_rule(string text) =>
        Assert.That(() => AccessRule.Parse(text), Throws.InstanceOf<FormatException>().With.Message.Contains("uid:N, gid:N or cert:SUBJECT"));

    [Test]
    public async Task Rules_survive_journal_replay_and_a_checkpoint_and_the_store_checks_clean()
    {
        var device = await NewStoreAsync();
        var store = await UpperStore.OpenAsync(device);
        await store.CreateInstanceAsync("a", 64 * Block, null, access: UidAndSubject);
        await store.CreateInstanceAsync("b", 64 * Block, null);
        await store.SetAccessAsync("b", new InstanceAccess([new AccessRule(AccessKind.Gid, 5)]));

        // As after kill -9: only the journal has them.
        var crashed = device.Clone();
        await using (var replayed = await UpperStore.OpenAsync(crashed))
        {
            Assert.That(replayed.Find("a")!.Definition.Access, Is.EqualTo(UidAndSubject));
            Assert.That(replayed.Find("b")!.Definition.Access.ToString(), Is.EqualTo("gid:5"));
        }

        var afterCrash = await StoreChecker.CheckAsync(device.Clone());
        Assert.That(afterCrash.Clean, Is.True, CrashTestKit.Describe(afterCrash));

        await store.DisposeAsync(); // a checkpoint holds them now
        Assert.That((await SuperblockPublisher.ReadNewestAsync(device)).IncompatibleFeatures, Is.EqualTo(Superblock.AccessRulesFeature | Superblock.IncrementalCheckpointFeature),
            "a build that does not know rules must not open this store");
        var closed = await StoreChecker.CheckAsync(device);
        Assert.That(closed.Clean, Is.True, CrashTestKit.Describe(closed));
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.Find("a")!.Definition.Access, Is.EqualTo(UidAndSubject));
        Assert.That(reopened.Find("b")!.Definition.Access.ToString(), Is.EqualTo("gid:5"));
    }

    [Test]
    public async Task Opening_an_instance_to_everyone_again_clears_the_feature_bit_at_the_next_checkpoint()
    {
        var device = await NewStoreAsync();
        await using (var store = await UpperStore.OpenAsync(device))
        {
            await store.CreateInstanceAsync("a", 64 * Block, null, access: UidAndSubject);
        }

        await using (var store = await UpperStore.OpenAsync(device))
        {
            await store.SetAccessAsync("a", InstanceAccess.Open);
        }

        Assert.That((await SuperblockPublisher.ReadNewestAsync(device)).IncompatibleFeatures, Is.EqualTo(Superblock.IncrementalCheckpointFeature));
        await using var reopened = await UpperStore.OpenAsync(device);
        Assert.That(reopened.Find("a")!.Definition.Access.IsOpen, Is.True);
    }

    [Test]
    public async Task A_clone_keeps_the_rules_of_its_source()
    {
        var device = await NewStoreAsync();
        await using var store = await UpperStore.OpenAsync(device);
        await store.CreateInstanceAsync("a", 64 * Block, null, access: UidAndSubject);
        var (clone, _) = await store.CloneInstanceAsync("a", "copy");
        Assert.That(clone.Definition.Access, Is.EqualTo(UidAndSubject));
    }
}
