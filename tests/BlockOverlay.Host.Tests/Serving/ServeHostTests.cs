using System.Net.Sockets;
using BlockOverlay.Exports;
using BlockOverlay.Host.Config;
using BlockOverlay.Host.Live;
using BlockOverlay.Host.Serving;
using BlockOverlay.Io;
using BlockOverlay.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Host.Tests.Serving;

/// <summary>
/// <c>serve</c> as a host of services: one start order, and a clean shutdown that is that
/// order reversed (listeners, metrics, control, exports, and the store last).
/// </summary>
[TestFixture]
public sealed class ServeHostTests
{
    private string _directory = "";

    [SetUp]
    public void SetUp() => _directory = Directory.CreateTempSubdirectory("blockoverlay-serve-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_directory, recursive: true);

    [Test]
    public void The_services_start_store_first_and_listeners_last()
    {
        using var host = ServeHost.Build(Settings(store: null), NullLoggerFactory.Instance);

        Assert.That(host.Services.GetServices<IHostedService>().Select(s => s.GetType()), Is.EqualTo(new[]
        {
            typeof(StoreService), typeof(ExportsService), typeof(ControlService), typeof(MetricsService), typeof(ListenerService),
        }));
        Assert.That(host.Services.GetRequiredService<IHostLifetime>(), Is.InstanceOf<SignalLifetime>(), "no console lifetime and its log lines");
    }

    [Test]
    public async Task The_host_stops_its_services_in_the_reverse_order_of_their_start_and_after_a_failed_start_too()
    {
        // What the server's clean shutdown relies on from the generic host.
        var log = new List<string>();
        var builder = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(settings: null);
        foreach (string name in new[] { "store", "exports", "listeners" })
        {
            builder.Services.AddSingleton<IHostedService>(new Recording(name, log, failToStart: false));
        }

        using (var host = builder.Build())
        {
            await host.StartAsync();
            await host.StopAsync();
        }

        Assert.That(log, Is.EqualTo(new[]
        {
            "start store", "start exports", "start listeners", "stop listeners", "stop exports", "stop store",
        }));

        log.Clear();
        var failing = Microsoft.Extensions.Hosting.Host.CreateEmptyApplicationBuilder(settings: null);
        failing.Services.AddSingleton<IHostedService>(new Recording("store", log, failToStart: false));
        failing.Services.AddSingleton<IHostedService>(new Recording("exports", log, failToStart: true));
        failing.Services.AddSingleton<IHostedService>(new Recording("listeners", log, failToStart: false));
        using (var host = failing.Build())
        {
            Assert.ThrowsAsync<IOException>(() => host.StartAsync());
            await host.StopAsync();
        }

        Assert.That(log, Is.EqualTo(new[] { "start store", "start exports", "stop listeners", "stop exports", "stop store" }),
            "every service is stopped, started or not: each one closes only what it opened");
    }

    [Test]
    public async Task A_clean_stop_writes_back_the_instances_before_the_store_closes_and_removes_the_sockets()
    {
        string store = await CreateStoreAsync("a");
        string listen = Path.Combine(_directory, "nbd.sock");
        var settings = Settings(store, "unix:" + listen);
        using (var host = ServeHost.Build(settings, NullLoggerFactory.Instance))
        {
            await host.StartAsync();
            var served = host.Services.GetServices<IHostedService>().OfType<StoreService>().Single().Host!;
            Assert.That(File.Exists(ControlServer.PathFor(store)), Is.True, "the control socket is up");
            using (var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await client.ConnectAsync(new UnixDomainSocketEndPoint(listen));
            }

            byte[] data = new byte[UpperStore.BlockSize];
            Array.Fill(data, (byte)7);
            await served.Served("a")!.Value.Export.WriteAsync(0, data, WriteFlags.None);   // dirty, never flushed
            await host.StopAsync();
        }

        Assert.That(File.Exists(ControlServer.PathFor(store)), Is.False, "the control socket is gone");
        await using var session = await StoreSession.OpenAsync(store);
        Assert.That(session.Store.WasClean, Is.True, "the store was closed cleanly");
        Assert.That(session.Store.Find("a")!.UpperBlocks, Is.EqualTo(1), "the instance wrote back before the store closed");
    }

    [Test]
    public async Task A_failed_start_closes_the_store_it_opened()
    {
        string store = await CreateStoreAsync("a");
        var settings = Settings(store, "unix:" + Path.Combine(_directory, "no-such-directory", "nbd.sock"));
        using (var host = ServeHost.Build(settings, NullLoggerFactory.Instance))
        {
            Assert.CatchAsync<Exception>(() => host.StartAsync());
            await host.StopAsync();
        }

        await using var session = await StoreSession.OpenAsync(store);
        Assert.That(session.Store.WasClean, Is.True);
        Assert.That(File.Exists(ControlServer.PathFor(store)), Is.False);
    }

    private static ServeSettings Settings(string? store, params string[] listen) => ServeSettings.Resolve(new ServeFlags
    {
        Store = store,
        Exports = store is null ? ["m=memory:1M"] : [],
        Listen = listen,
        LogFormat = "json",
    }, config: null);

    private async Task<string> CreateStoreAsync(string instance)
    {
        string path = Path.Combine(_directory, "store");
        await using (var device = await FileDevice.CreateAsync(path, 64L << 20))
        {
            await UpperStore.CreateAsync(device);
        }

        await using var session = await StoreSession.OpenAsync(path);
        await session.Store.CreateInstanceAsync(instance, 1L << 20, null, BlockOverlay.Store.Format.FlushMode.Isolated, 0);
        return path;
    }

    private sealed class Recording(string name, List<string> log, bool failToStart) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            log.Add("start " + name);
            return failToStart ? Task.FromException(new IOException(name + " failed")) : Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken)
        {
            log.Add("stop " + name);
            return Task.CompletedTask;
        }
    }
}
