using System.Net;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Host.Config;
using BlockOverlay.Io;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Tests.Config;

/// <summary>
/// Flags over config over defaults, key by key; where <c>serve</c> listens with and without
/// sockets from systemd; and the store the <c>instance</c> commands use.
/// </summary>
public class ServeSettingsTests
{
    private static readonly HostConfig Config = HostConfig.Parse("""
        {
          "store": "config.store",
          "listen": ["unix:config.sock"],
          "metrics": "tcp:127.0.0.1:9001",
          "exports": ["fromconfig=memory:1M"],
          "cache": { "instanceDirtyLimit": "64M" },
          "log": { "level": "warning", "format": "json" },
          "ioBackend": "threads"
        }
        """, "/cfg/config.json");

    private static string[] Listen(ServeSettings settings, int inherited = 0) =>
        [.. settings.AddressesBeside(inherited).Select(a => a.ToString())];

    [Test]
    public void Without_flags_every_key_comes_from_the_config()
    {
        var settings = ServeSettings.Resolve(new ServeFlags(), Config);

        Assert.Multiple(() =>
        {
            Assert.That(settings.Store, Is.EqualTo("/cfg/config.store"));
            Assert.That(settings.Exports.Select(e => e.Name), Is.EqualTo(new[] { "fromconfig" }));
            Assert.That(Listen(settings), Is.EqualTo(new[] { "unix:/cfg/config.sock" }));
            Assert.That(settings.Metrics, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9001)));
            Assert.That(settings.Cache.InstanceDirtyLimit, Is.EqualTo(64L << 20));
            Assert.That(settings.LogLevel, Is.EqualTo(LogLevel.Warning));
            Assert.That(settings.LogFormat, Is.EqualTo(LogFormat.Json));
            Assert.That(settings.IoBackend, Is.EqualTo(IoBackend.Threads));
        });
    }

    [Test]
    public void Each_flag_replaces_its_key_whole()
    {
        var settings = ServeSettings.Resolve(new ServeFlags
        {
            Store = "flag.store",
            Exports = ["a=memory:1M", "b=memory:2M"],
            Listen = ["tcp:127.0.0.1:7000"],
            Metrics = "tcp:127.0.0.1:9002",
            LogLevel = "error",
            LogFormat = "text",
            IoBackend = "uring",
        }, Config);

        Assert.Multiple(() =>
        {
            Assert.That(settings.Store, Is.EqualTo("flag.store"), "a store flag is taken as given, relative to the working directory");
            Assert.That(settings.Exports.Select(e => e.Name), Is.EqualTo(new[] { "a", "b" }));
            Assert.That(Listen(settings), Is.EqualTo(new[] { "tcp:127.0.0.1:7000" }), "--listen replaces the config's list");
            Assert.That(settings.Metrics, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9002)));
            Assert.That(settings.LogLevel, Is.EqualTo(LogLevel.Error));
            Assert.That(settings.LogFormat, Is.EqualTo(LogFormat.Text));
            Assert.That(settings.IoBackend, Is.EqualTo(IoBackend.Uring));
            Assert.That(settings.Cache.InstanceDirtyLimit, Is.EqualTo(64L << 20), "no flag touches the cache");
        });
    }

    [Test]
    public void One_flag_leaves_the_other_keys_to_the_config()
    {
        var settings = ServeSettings.Resolve(new ServeFlags { Listen = ["unix:/tmp/flag.sock"] }, Config);

        Assert.That(settings.Store, Is.EqualTo("/cfg/config.store"));
        Assert.That(settings.Exports.Select(e => e.Name), Is.EqualTo(new[] { "fromconfig" }));
    }

    [Test]
    public void Verbose_means_debug_and_beats_the_config_but_not_together_with_log_level()
    {
        Assert.That(ServeSettings.Resolve(new ServeFlags { Verbose = true }, Config).LogLevel, Is.EqualTo(LogLevel.Debug));
        Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(new ServeFlags { Verbose = true, LogLevel = "error" }, null))!.Message,
            Is.EqualTo("give --verbose or --log-level, not both"));
    }

    [Test]
    public void With_neither_flags_nor_config_the_defaults_apply_and_the_demo_store_is_served()
    {
        var settings = ServeSettings.Resolve(new ServeFlags(), null);
        var stdio = ServeSettings.Resolve(new ServeFlags { Stdio = true }, null);

        Assert.Multiple(() =>
        {
            Assert.That(settings.Store, Is.Null);
            Assert.That(settings.Demo, Is.True, "the embedded default: the demo store in ./var");
            Assert.That(settings.Exports, Is.Empty);
            Assert.That(Listen(settings), Is.EqualTo(new[] { $"unix:{Path.GetFullPath("var/blockoverlay.sock")}", "tcp:127.0.0.1:10809" }));
            Assert.That(settings.Metrics, Is.Null);
            Assert.That(settings.Cache, Is.EqualTo(new CacheOptions()));
            Assert.That(settings.LogLevel, Is.EqualTo(LogLevel.Information));
            Assert.That(settings.LogFormat, Is.EqualTo(LogFormat.Text));
            Assert.That(settings.IoBackend, Is.EqualTo(IoBackend.Auto));
            Assert.That(stdio.Demo, Is.False, "one client on stdio gets the memory demo disk, not a store made in the working directory");
            Assert.That(stdio.Exports.Select(e => e.ToString()), Is.EqualTo(new[] { ServeSettings.DemoExport }));
        });
    }

    [Test]
    public void A_store_from_the_config_is_something_to_serve_so_there_is_no_demo_disk()
    {
        var storeOnly = HostConfig.Parse("""{ "store": "/s" }""", "/cfg/c.json");

        Assert.That(ServeSettings.Resolve(new ServeFlags(), storeOnly).Exports, Is.Empty);
        Assert.That(ServeSettings.Resolve(new ServeFlags(), storeOnly).Demo, Is.False);
    }

    [Test]
    public void Tls_flags_replace_the_configs_tls_keys_one_by_one()
    {
        var config = HostConfig.Parse("""{ "tls": { "mode": "require", "cert": "c.pem", "key": "k.pem" } }""", "/cfg/c.json");

        Assert.Multiple(() =>
        {
            Assert.That(ServeSettings.Resolve(new ServeFlags(), null).Tls, Is.EqualTo(new TlsSettings()), "off unless asked for");
            Assert.That(ServeSettings.Resolve(new ServeFlags { TlsCa = "ca.pem" }, config).Tls,
                Is.EqualTo(new TlsSettings(TlsChoice.Require, "/cfg/c.pem", "/cfg/k.pem", "ca.pem")));
            Assert.That(ServeSettings.Resolve(new ServeFlags { Tls = "on", TlsCert = "mine.pem" }, config).Tls,
                Is.EqualTo(new TlsSettings(TlsChoice.On, "mine.pem", "/cfg/k.pem")));
            Assert.That(ServeSettings.Resolve(new ServeFlags { Tls = "off" }, config).Tls.Load(), Is.Null, "--tls off turns the config's TLS off");
        });
    }

    [TestCase("maybe", null, "--tls: 'maybe' is not a TLS mode: use off, on or require")]
    [TestCase("on", null, "TLS on needs a certificate and its key: --tls-cert PATH --tls-key PATH")]
    [TestCase("require", "c.pem", "TLS require needs a certificate and its key")]
    public void Tls_on_without_its_files_is_refused_before_serving(string mode, string? certificate, string message)
    {
        Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(new ServeFlags { Tls = mode, TlsCert = certificate }, null))!.Message,
            Does.StartWith(message));
    }

    [Test]
    public void Systemd_sockets_replace_the_configs_listeners_but_not_the_command_lines()
    {
        var fromConfig = ServeSettings.Resolve(new ServeFlags(), Config);
        var fromFlags = ServeSettings.Resolve(new ServeFlags { Listen = ["tcp:127.0.0.1:7000"] }, Config);
        var fromNothing = ServeSettings.Resolve(new ServeFlags(), null);

        Assert.Multiple(() =>
        {
            Assert.That(Listen(fromConfig, inherited: 2), Is.Empty);
            Assert.That(Listen(fromFlags, inherited: 2), Is.EqualTo(new[] { "tcp:127.0.0.1:7000" }));
            Assert.That(Listen(fromNothing, inherited: 1), Is.Empty);
        });
    }

    [Test]
    public void Stdio_refuses_a_listen_flag_but_not_the_configs_listeners()
    {
        Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(new ServeFlags { Stdio = true, Listen = ["unix:/x"] }, null))!.Message,
            Does.StartWith("--stdio serves standard input and output"));
        Assert.That(ServeSettings.Resolve(new ServeFlags { Stdio = true }, Config).Stdio, Is.True);
    }

    [TestCase("--listen", "udp:x", "--listen: 'udp:x': a listen address starts with tcp: or unix:")]
    [TestCase("--export", "x", "--export: 'x' is not an export")]
    [TestCase("--metrics", "unix:/m", "--metrics: 'unix:/m': metrics are served over TCP only")]
    [TestCase("--log-level", "loud", "--log-level: 'loud' is not a log level")]
    [TestCase("--log-format", "xml", "--log-format: 'xml' is not a log format")]
    public void A_bad_flag_value_is_named_by_its_flag(string flag, string value, string message)
    {
        var flags = flag switch
        {
            "--listen" => new ServeFlags { Listen = [value] },
            "--export" => new ServeFlags { Exports = [value] },
            "--metrics" => new ServeFlags { Metrics = value },
            "--log-level" => new ServeFlags { LogLevel = value },
            _ => new ServeFlags { LogFormat = value },
        };

        Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(flags, Config))!.Message, Does.StartWith(message));
    }

    [Test]
    public void A_unix_socket_path_that_cannot_be_one_is_bad_input_named_by_its_flag()
    {
        string tooLong = "unix:/" + new string('s', 200);
        Assert.Multiple(() =>
        {
            Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(new ServeFlags { Listen = [tooLong] }, Config))!.Message,
                Does.StartWith($"--listen: '{tooLong}': the socket path /{new string('s', 200)} is 201 bytes long; a unix socket path has at most 107"));
            Assert.That(Assert.Throws<FormatException>(() => ServeSettings.Resolve(new ServeFlags { Listen = ["unix:/a\0b"] }, Config))!.Message,
                Is.EqualTo("--listen: 'unix:/a\\0b': a unix socket path cannot contain a NUL character"));
        });
    }
}
