using BlockOverlay.Io;
using BlockOverlay.Io.Rbd;

namespace BlockOverlay.Io.Tests;

/// <summary>What only an RBD image on a real (one-node) Ceph cluster can show: creation, the exclusive lock, takeover and fencing.</summary>
[Category("Ceph")]
public sealed class RbdDeviceTests
{
    private const int Block = TestData.Block;
    private const long ImageSize = 1 << 20;

    private CephClientOptions _cluster = null!;
    private RbdAddress _image = null!;

    [SetUp]
    public async Task NameAnImage()
    {
        _cluster = (await CephTestCluster.SharedAsync()).Options;
        _image = CephTestCluster.NewImage("device");
    }

    [TearDown]
    public Task RemoveTheImage() => RbdDevice.RemoveAsync(_image, _cluster);

    [Test]
    public async Task Data_survives_closing_and_reopening()
    {
        await using (var device = await RbdDevice.CreateAsync(_image, ImageSize, _cluster))
        {
            await TestData.WriteAsync(device, 3 * Block, tag: 5, 2 * Block, durable: true);
        }

        await using var reopened = await RbdDevice.OpenAsync(_image, _cluster);

        Assert.Multiple(async () =>
        {
            Assert.That(reopened.Size, Is.EqualTo(ImageSize));
            Assert.That(await TestData.ReadAsync(reopened, 3 * Block, 2 * Block), Is.EqualTo(TestData.Pattern(5, 2 * Block)));
        });
    }

    [Test]
    public async Task Create_refuses_an_existing_image_and_leaves_it_alone()
    {
        await using (var device = await RbdDevice.CreateAsync(_image, ImageSize, _cluster))
        {
            await TestData.WriteAsync(device, 0, tag: 1, Block, durable: true);
        }

        var error = Assert.CatchAsync<IOException>(async () => await RbdDevice.CreateAsync(_image, 2 * ImageSize, _cluster));

        await using var existing = await RbdDevice.OpenAsync(_image, _cluster);
        Assert.Multiple(async () =>
        {
            Assert.That(error!.Message, Does.Contain("already exists").And.Contain(_image.ToString()));
            Assert.That(error.HResult, Is.EqualTo(17), "EEXIST");
            Assert.That(existing.Size, Is.EqualTo(ImageSize));
            Assert.That(await TestData.ReadAsync(existing, 0, Block), Is.EqualTo(TestData.Pattern(1, Block)));
        });
    }

    [Test]
    public void Opening_an_image_that_does_not_exist_says_how_to_make_one()
    {
        var error = Assert.CatchAsync<IOException>(async () => await RbdDevice.OpenAsync(_image, _cluster));

        Assert.That(error!.Message, Does.Contain("no such RBD image").And.Contain("store create"));
    }

    [Test]
    public async Task A_second_open_of_an_image_in_use_fails_naming_the_owner()
    {
        await using var first = await RbdDevice.CreateAsync(_image, ImageSize, _cluster);

        var error = Assert.CatchAsync<IOException>(async () => await RbdDevice.OpenAsync(_image, _cluster));

        Assert.Multiple(() =>
        {
            Assert.That(error!.Message, Does.Contain("in use").And.Contain(_image.ToString()).And.Contain(first.LockOwner).And.Contain("--takeover"));
            Assert.That(error.HResult, Is.EqualTo(11), "EAGAIN, as the file store's lock");
        });
    }

    [Test]
    public async Task The_owner_is_named_by_its_client_address()
    {
        await using var device = await RbdDevice.CreateAsync(_image, ImageSize, _cluster);

        Assert.Multiple(() =>
        {
            Assert.That(device.LockOwner, Does.Match(@"^127\.0\.0\.1:\d+/\d+$"));
            Assert.That(device.ClientName, Does.Match(@"^client\.\d+$"));
        });
    }

    [Test]
    public async Task The_lock_is_released_on_close()
    {
        await (await RbdDevice.CreateAsync(_image, ImageSize, _cluster)).DisposeAsync();

        await using var second = await RbdDevice.OpenAsync(_image, _cluster);

        await TestData.WriteAsync(second, 0, tag: 2, Block, durable: true);
    }

    [Test]
    public async Task Takeover_fences_the_old_owner_whose_writes_never_land()
    {
        await using var old = await RbdDevice.CreateAsync(_image, ImageSize, _cluster);
        await TestData.WriteAsync(old, 0, tag: 1, Block, durable: true);

        await using var taker = await RbdDevice.OpenAsync(_image, _cluster, takeover: true);
        var refused = Assert.CatchAsync<IOException>(async () => await TestData.WriteAsync(old, Block, tag: 3, Block, durable: true));
        await TestData.WriteAsync(taker, 2 * Block, tag: 4, Block, durable: true);

        Assert.Multiple(async () =>
        {
            Assert.That(refused!.HResult, Is.EqualTo(RbdDevice.EBLOCKLISTED));
            Assert.That(refused.Message, Does.Contain("fenced").And.Contain(old.ClientName).And.Contain(old.LockOwner));
            Assert.That(old.Fenced.IsCompleted, Is.True, "the old owner knows it was fenced");
            Assert.That(taker.Fenced.IsCompleted, Is.False);
            Assert.That(await TestData.ReadAsync(taker, 0, Block), Is.EqualTo(TestData.Pattern(1, Block)), "the old owner's completed write is kept");
            Assert.That(await TestData.ReadAsync(taker, Block, Block), Is.All.EqualTo(0), "the fenced write never landed");
            Assert.That(await TestData.ReadAsync(taker, 2 * Block, Block), Is.EqualTo(TestData.Pattern(4, Block)));
        });
    }

    [TestCase("rbd:pool/image", "pool", "image", null)]
    [TestCase("rbd:p/img@snap1", "p", "img", "snap1")]
    public void Addresses_parse(string text, string pool, string image, string? snapshot)
    {
        var address = RbdAddress.Parse(text);

        Assert.Multiple(() =>
        {
            Assert.That(address, Is.EqualTo(new RbdAddress(pool, image, snapshot)));
            Assert.That(address.ToString(), Is.EqualTo(text));
        });
    }

    [TestCase("rbd:")]
    [TestCase("rbd:pool")]
    [TestCase("rbd:pool/")]
    [TestCase("rbd:/image")]
    [TestCase("rbd:a/b/c")]
    [TestCase("rbd:pool/image@")]
    [TestCase("pool/image")]
    public void Malformed_addresses_are_refused(string text) =>
        Assert.That(() => RbdAddress.Parse(text), Throws.InstanceOf<FormatException>().With.Message.Contains("rbd:POOL/IMAGE"));
}
