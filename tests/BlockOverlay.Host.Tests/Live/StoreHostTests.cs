using BlockOverlay.Engine.Cache;
using BlockOverlay.Exports;
using BlockOverlay.Host.Live;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Server;
using BlockOverlay.Store;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>Instance commands on a served store: a long command on one instance holds up only commands on that instance.</summary>
[TestFixture]
public sealed class StoreHostTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-host-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public async Task A_commit_in_progress_holds_up_commands_on_its_instance_only()
    {
        await using var host = await OpenServedStoreAsync();
        await RunOkAsync(host, Create("busy", "8M"));

        using var goOn = new ManualResetEventSlim();
        var commit = await StartHeldCommitAsync(host, "busy", goOn, CancellationToken.None);

        // Other instances' commands go on.
        await RunOkAsync(host, Create("other", "4M"));
        await RunOkAsync(host, new SetRequest("other", FlushMode: null, Quota: "1M", Allow: [], AllowAll: false));
        await RunOkAsync(host, new ListRequest());
        await RunOkAsync(host, new StatRequest("busy"));
        // A delete of the instance being committed waits for the commit.
        var delete = host.RunAsync(new DeleteRequest("busy", Force: false), _ => { }, CancellationToken.None);
        await Task.Delay(100);
        Assert.That(delete.IsCompleted, Is.False, "the delete waits for the commit of its instance");

        goOn.Set();
        Assert.That(await commit.WaitAsync(Wait), Is.InstanceOf<InstanceCommitted>());
        Assert.That(await delete.WaitAsync(Wait), Is.InstanceOf<InstanceDeleted>());
        Assert.That(File.Exists(Path.Combine(_directory, "busy.raw")), Is.True, "the commit finished before the delete");
        Assert.That(host.Store.Find("busy"), Is.Null);
        Assert.That(host.Store.Find("other"), Is.Not.Null);
    }

    [Test]
    public async Task Stopping_the_server_ends_a_copy_in_progress_and_the_commands_waiting_leaving_nothing_behind()
    {
        await using var host = await OpenServedStoreAsync();
        await RunOkAsync(host, Create("busy", "8M"));
        using var stop = new CancellationTokenSource();
        using var goOn = new ManualResetEventSlim();
        var commit = await StartHeldCommitAsync(host, "busy", goOn, stop.Token);
        var waiting = host.RunAsync(new DeleteRequest("busy", Force: false), _ => { }, stop.Token);

        await stop.CancelAsync();
        var refused = InstanceText.Render(new DeleteRequest("busy", Force: false), await waiting.WaitAsync(Wait));
        goOn.Set();
        var ended = InstanceText.Render(new CommitRequest("busy", "x"), await commit.WaitAsync(Wait));

        Assert.That((refused.ExitCode, refused.Stderr), Is.EqualTo((1, "blockoverlay instance delete: the server is stopping\n")));
        Assert.That((ended.ExitCode, ended.Stderr), Is.EqualTo((1, "blockoverlay instance commit: the server is stopping\n")));
        Assert.That(Directory.GetFiles(_directory).Select(Path.GetFileName), Is.EquivalentTo(new[] { "store" }), "no image, no partial file");
        Assert.That(host.Store.Find("busy"), Is.Not.Null);
    }

    [Test]
    public async Task Deleting_an_instance_with_dirty_data_on_a_full_store_frees_it_without_writing_it_back()
    {
        await using var host = await OpenServedStoreAsync();
        await RunOkAsync(host, Create("a", "32M"));
        await RunOkAsync(host, Create("b", "64M"));
        var a = host.Served("a")!.Value.Export;
        var b = host.Served("b")!.Value.Export;
        byte[] chunk = new byte[1 << 20];
        Array.Fill(chunk, (byte)1);
        for (int i = 0; i < 16; i++)
        {
            await a.WriteAsync((long)i << 20, chunk, WriteFlags.None);   // 16 MiB dirty, never flushed
        }

        // b fills the store with flushed data until it is full.
        var full = Assert.CatchAsync(async () =>
        {
            for (int i = 0; i < 64; i++)
            {
                await b.WriteAsync((long)i << 20, chunk, WriteFlags.None);
                await b.FlushAsync();
            }
        });
        Assert.That(full, Is.InstanceOf<StoreFullException>().Or.InstanceOf<IOException>().Or.InstanceOf<ExportException>(), full?.ToString());
        long freeBefore = host.Store.Info.FreeBytes;

        await RunOkAsync(host, new DeleteRequest("a", Force: false));

        Assert.That(host.Store.Find("a"), Is.Null);
        Assert.That(host.Served("a"), Is.Null);
        Assert.That(host.Cache.Instances.Select(i => i.Name), Does.Not.Contain("a"), "no cache left behind");
        Assert.That(host.Cache.DirtyBytes, Is.EqualTo(host.Cache.Instances.Sum(i => i.DirtyBytes)), "its dirty bytes left the total");
        Assert.That(host.Store.Info.FreeBytes, Is.GreaterThanOrEqualTo(freeBefore));
    }

    /// <summary>A store of 64 MiB in the test's directory, held by a host as a server holds it.</summary>
    private async Task<StoreHost> OpenServedStoreAsync()
    {
        string store = Path.Combine(_directory, "store");
        await using (var device = await FileDevice.CreateAsync(store, 64L << 20))
        {
            await UpperStore.CreateAsync(device);
        }

        return await StoreHost.OpenAsync(store, CacheOptions.FlushOnly, new ExportCatalog(), NullLogger.Instance);
    }

    /// <summary>
    /// Starts a commit of the instance to NAME.raw in the test's directory and returns once it is
    /// stopped at its first progress report, where it stays until <paramref name="goOn"/> is set.
    /// </summary>
    private async Task<Task<InstanceResponse>> StartHeldCommitAsync(StoreHost host, string name, ManualResetEventSlim goOn, CancellationToken stop)
    {
        var reported = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var commit = Task.Run(() => host.RunAsync(
            new CommitRequest(name, Path.Combine(_directory, name + ".raw")),
            _ =>
            {
                reported.TrySetResult();
                goOn.Wait(Wait);
            },
            stop));
        await reported.Task.WaitAsync(Wait, CancellationToken.None);   // the test stops it later, not while it starts
        return commit;
    }

    private static async Task RunOkAsync(StoreHost host, InstanceRequest request)
    {
        var response = await host.RunAsync(request, _ => { }, CancellationToken.None).WaitAsync(Wait);
        Assert.That(response.ExitCode, Is.Zero, $"{request}: {response}");
    }

    private static CreateRequest Create(string name, string size) => new(name, Base: null, Size: size, FlushMode: null, Quota: null, Allow: []);
}
