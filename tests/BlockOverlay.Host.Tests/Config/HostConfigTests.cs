using System.Net;
using System.Net.Sockets;
using BlockOverlay.Engine.Cache;
using BlockOverlay.Host.Config;
using BlockOverlay.Host.Tests.Docs;
using BlockOverlay.Io;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Tests.Config;

/// <summary>
/// The config file as parsed: every key, paths made absolute against the file's directory,
/// comments and trailing commas accepted, and each kind of mistake refused with a message
/// that names the key.
/// </summary>
public class HostConfigTests
{
    /// <summary>Where the parsed text pretends to live: relative paths start from /etc/bo.</summary>
    private const string FilePath = "/etc/bo/config.json";

    private static HostConfig Parse(string json) => HostConfig.Parse(json, FilePath);

    private static string ProblemWith(string json) => Assert.Throws<FormatException>(() => Parse(json))!.Message;

    [Test]
    public void Every_key_is_read_and_relative_paths_start_from_the_files_directory()
    {
        var config = Parse("""
            {
              "store": "data/store",
              "listen": ["unix:nbd.sock", "unix:/run/bo.sock", "tcp:127.0.0.1:10810"],
              "socketMode": "0600",
              "metrics": "tcp:127.0.0.1:9810",
              "exports": ["scratch=memory:64M", "iso=file:../images/a.iso:ro", "abs=file:/srv/b.raw"],
              "cache": { "globalDirtyLimit": "8G", "instanceDirtyLimit": "512M", "backgroundRatio": 0.5, "maxDirtyAgeSeconds": 2.5 },
              "limits": { "handshakeSeconds": 2.5, "payloadStallSeconds": 4, "replyStallSeconds": 6, "minTransferRate": "64K", "idleSeconds": 600,
                          "connections": 300, "connectionsPerClient": 20, "connectionMemory": "16M", "clientMemory": "64M", "serverMemory": "512M" },
              "tls": { "mode": "require", "cert": "tls/server.pem", "key": "/etc/keys/server.key", "ca": "../ca.pem" },
              "log": { "level": "warning", "format": "json" }
            }
            """);

        Assert.Multiple(() =>
        {
            Assert.That(config.FilePath, Is.EqualTo(FilePath));
            Assert.That(config.Store, Is.EqualTo("/etc/bo/data/store"));
            Assert.That(config.Listen.Select(a => a.ToString()),
                Is.EqualTo(new[] { "unix:/etc/bo/nbd.sock", "unix:/run/bo.sock", "tcp:127.0.0.1:10810" }));
            Assert.That(config.SocketMode, Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(config.Metrics, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9810)));
            Assert.That(config.Exports.Select(e => e.ToString()),
                Is.EqualTo(new[] { "scratch=memory:64M", "iso=file:/etc/images/a.iso:ro", "abs=file:/srv/b.raw" }));
            Assert.That(config.Cache, Is.EqualTo(new CacheOptions
            {
                GlobalDirtyLimit = 8L << 30,
                InstanceDirtyLimit = 512L << 20,
                BackgroundRatio = 0.5,
                MaxDirtyAge = TimeSpan.FromSeconds(2.5),
            }));
            Assert.That(config.Limits, Is.EqualTo(new NbdServerOptions
            {
                HandshakeTimeout = TimeSpan.FromSeconds(2.5),
                PayloadStallTimeout = TimeSpan.FromSeconds(4),
                ReplyStallTimeout = TimeSpan.FromSeconds(6),
                MinTransferRate = 64 << 10,
                IdleTimeout = TimeSpan.FromSeconds(600),
                MaxConnections = 300,
                MaxConnectionsPerClient = 20,
                MaxInFlightBytes = 16L << 20,
                MaxInFlightBytesPerClient = 64L << 20,
                MaxInFlightBytesInAll = 512L << 20,
            }));
            Assert.That(config.Tls, Is.EqualTo(new TlsSettings(TlsChoice.Require, "/etc/bo/tls/server.pem", "/etc/keys/server.key", "/etc/ca.pem")));
            Assert.That(config.LogLevel, Is.EqualTo(LogLevel.Warning));
            Assert.That(config.LogFormat, Is.EqualTo(LogFormat.Json));
        });
    }

    [Test]
    public void An_empty_object_sets_nothing_and_keeps_the_cache_defaults()
    {
        var config = Parse("{}");

        Assert.Multiple(() =>
        {
            Assert.That(config.Store, Is.Null);
            Assert.That(config.Listen, Is.Empty);
            Assert.That(config.Metrics, Is.Null);
            Assert.That(config.Exports, Is.Empty);
            Assert.That(config.Cache, Is.EqualTo(new CacheOptions()));
            Assert.That(config.Limits, Is.EqualTo(new NbdServerOptions()));
            Assert.That(config.Tls, Is.EqualTo(new TlsSettings()), "nothing given: the flags or the default (off) decide");
            Assert.That(config.LogLevel, Is.Null);
            Assert.That(config.LogFormat, Is.Null);
        });
    }

    [Test]
    public void Comments_and_trailing_commas_are_accepted()
    {
        var config = Parse("""
            // a line comment before everything
            {
              /* a block comment */ "listen": ["tcp:127.0.0.1:1", ], // after a value
              "log": { "level": "debug", },
            }
            """);

        Assert.That(config.Listen.Single().EndPoint, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 1)));
        Assert.That(config.LogLevel, Is.EqualTo(LogLevel.Debug));
    }

    [Test]
    public void A_unix_listener_with_a_relative_path_gets_an_absolute_unix_endpoint()
    {
        var address = Parse("""{ "listen": ["unix:sub/../nbd.sock"] }""").Listen.Single();

        Assert.That(address.EndPoint, Is.TypeOf<UnixDomainSocketEndPoint>());
        Assert.That(address.EndPoint.ToString(), Is.EqualTo("/etc/bo/nbd.sock"));
    }

    [TestCase("""{ "lsten": [] }""", "unknown key 'lsten' (the config takes store, listen, socketMode, metrics, exports, cache, limits, tls, log, ioBackend)")]
    [TestCase("""{ "Store": "s" }""", "unknown key 'Store'")]
    [TestCase("""{ "cache": { "globalDirtyLimt": "1G" } }""", "unknown key 'cache.globalDirtyLimt' ('cache' takes globalDirtyLimit, instanceDirtyLimit, backgroundRatio, maxDirtyAgeSeconds)")]
    [TestCase("""{ "log": { "levle": "debug" } }""", "unknown key 'log.levle' ('log' takes level, format)")]
    [TestCase("""{ "limits": { "connection": 5 } }""", "unknown key 'limits.connection' ('limits' takes handshakeSeconds, payloadStallSeconds, replyStallSeconds, minTransferRate, idleSeconds, connections, connectionsPerClient, connectionMemory, clientMemory, serverMemory)")]
    [TestCase("""{ "tls": { "certificate": "c.pem" } }""", "unknown key 'tls.certificate' ('tls' takes mode, cert, key, ca)")]
    public void An_unknown_key_is_named(string json, string message)
    {
        Assert.That(ProblemWith(json), Does.StartWith(message));
    }

    [TestCase("""{ "store": "a", "store": "b" }""", "store: given twice")]
    [TestCase("""{ "log": { "format": "json", "format": "text" } }""", "log.format: given twice")]
    public void A_key_given_twice_is_refused_rather_than_one_silently_winning(string json, string message)
    {
        Assert.That(ProblemWith(json), Is.EqualTo(message));
    }

    [TestCase("[]", "expected a JSON object { ... } at the top")]
    [TestCase("""{ "store": 7 }""", "store: expected a string in double quotes, not the number 7")]
    [TestCase("""{ "store": "" }""", "store: an empty path")]
    [TestCase("""{ "listen": "tcp:127.0.0.1:1" }""", "listen: expected an array")]
    [TestCase("""{ "listen": ["unix:a", null] }""", "listen[1]: expected a string in double quotes, not null")]
    [TestCase("""{ "store": null }""", "store: expected a string in double quotes, not null")]
    [TestCase("""{ "log": { "level": null } }""", "log.level: expected a string in double quotes, not null")]
    [TestCase("""{ "cache": { "backgroundRatio": null } }""", "cache.backgroundRatio: expected a number, not null")]
    [TestCase("""{ "listen": [1] }""", "listen[0]: expected a string in double quotes, not the number 1")]
    [TestCase("""{ "log": "debug" }""", "log: expected an object { ... }, not a string")]
    [TestCase("null", "expected a JSON object { ... } at the top")]
    [TestCase("""{ "listen": ["udp:1.2.3.4:5"] }""", "listen[0]: 'udp:1.2.3.4:5': a listen address starts with tcp: or unix:")]
    [TestCase("""{ "metrics": "unix:m.sock" }""", "metrics: 'unix:m.sock': metrics are served over TCP only")]
    [TestCase("""{ "exports": ["disk=floppy:1"] }""", "exports[0]: 'floppy' in export 'disk=floppy:1' is not an export kind")]
    [TestCase("""{ "cache": [] }""", "cache: expected an object { ... }, not an array")]
    [TestCase("""{ "cache": { "backgroundRatio": "0.5" } }""", "cache.backgroundRatio: expected a number, not a string")]
    [TestCase("""{ "log": { "level": "verbose" } }""", "log.level: 'verbose' is not a log level: use debug, information, warning or error")]
    [TestCase("""{ "log": { "format": "xml" } }""", "log.format: 'xml' is not a log format: use text or json")]
    [TestCase("""{ "ioBackend": "aio" }""", "ioBackend: 'aio' is not an I/O backend: use auto, uring or threads")]
    [TestCase("""{ "store": "a\u0000b" }""", "store: a path cannot contain a NUL character")]
    [TestCase("""{ "listen": ["unix:a\u0000b"] }""", "listen[0]: a path cannot contain a NUL character")]
    public void A_value_of_the_wrong_kind_is_refused_with_its_key(string json, string message)
    {
        Assert.That(ProblemWith(json), Does.StartWith(message));
    }

    [TestCase("""{ "cache": { "globalDirtyLimit": "4Q" } }""", "cache.globalDirtyLimit: '4Q' is not a size")]
    [TestCase("""{ "cache": { "instanceDirtyLimit": "1GB" } }""", "cache.instanceDirtyLimit: '1GB' is ambiguous")]
    [TestCase("""{ "cache": { "instanceDirtyLimit": "512K" } }""", "cache: the per-instance dirty limit must be at least 1 MiB")]
    [TestCase("""{ "cache": { "globalDirtyLimit": "1G", "instanceDirtyLimit": "2G" } }""", "cache: the global dirty limit is below the per-instance limit")]
    [TestCase("""{ "cache": { "backgroundRatio": 1.5 } }""", "cache: the background ratio must be in (0, 1]")]
    [TestCase("""{ "cache": { "backgroundRatio": 0 } }""", "cache: the background ratio must be in (0, 1]")]
    [TestCase("""{ "cache": { "maxDirtyAgeSeconds": 0 } }""", "cache.maxDirtyAgeSeconds: expected a positive number of seconds")]
    [TestCase("""{ "cache": { "maxDirtyAgeSeconds": -0.001 } }""", "cache.maxDirtyAgeSeconds: expected a positive number of seconds")]
    [TestCase("""{ "cache": { "maxDirtyAgeSeconds": 1e300 } }""", "cache.maxDirtyAgeSeconds: expected a positive number of seconds")]
    public void Cache_limits_are_parsed_as_sizes_and_checked_together(string json, string message)
    {
        Assert.That(ProblemWith(json), Does.StartWith(message));
    }

    [TestCase("""{ "tls": { "mode": "yes" } }""", "tls.mode: 'yes' is not a TLS mode: use off, on or require")]
    [TestCase("""{ "tls": { "cert": "" } }""", "tls.cert: an empty path")]
    [TestCase("""{ "limits": { "handshakeSeconds": 0 } }""", "limits.handshakeSeconds: expected a positive number of seconds")]
    [TestCase("""{ "limits": { "connections": 0 } }""", "limits.connections: expected a whole number from 1")]
    [TestCase("""{ "limits": { "connections": 2.5 } }""", "limits.connections: expected an integer")]
    [TestCase("""{ "limits": { "connectionsPerClient": -1 } }""", "limits.connectionsPerClient: expected a whole number from 1")]
    [TestCase("""{ "limits": { "connections": 10, "connectionsPerClient": 20 } }""", "limits: connectionsPerClient (20) is above connections (10)")]
    [TestCase("""{ "limits": { "connectionMemory": "512K" } }""", "limits.connectionMemory: expected at least 1 MiB")]
    [TestCase("""{ "limits": { "connectionMemory": "lots" } }""", "limits.connectionMemory: 'lots' is not a size")]
    [TestCase("""{ "limits": { "connectionMemory": "64M", "clientMemory": "32M" } }""", "limits: clientMemory (33554432 bytes) is below connectionMemory (67108864 bytes)")]
    [TestCase("""{ "limits": { "clientMemory": "512M", "serverMemory": "256M" } }""", "limits: serverMemory (268435456 bytes) is below clientMemory (536870912 bytes)")]
    [TestCase("""{ "limits": { "minTransferRate": "512" } }""", "limits.minTransferRate: expected at least 1K")]
    [TestCase("""{ "limits": { "idleSeconds": -1 } }""", "limits.idleSeconds: expected a positive number of seconds")]
    [TestCase("""{ "limits": { "replyStallSeconds": 0 } }""", "limits.replyStallSeconds: expected a positive number of seconds")]
    [TestCase("""{ "socketMode": "0777" }""", "socketMode: 0777: a socket takes only read and write bits (at most 0666)")]
    [TestCase("""{ "socketMode": "0066" }""", "socketMode: 0066: the owner needs read and write")]
    [TestCase("""{ "socketMode": "rw-rw----" }""", "socketMode: 'rw-rw----' is not a mode in octal, like 0660")]
    public void Connection_limits_are_checked_with_their_key(string json, string message)
    {
        Assert.That(ProblemWith(json), Does.StartWith(message));
    }

    [Test]
    public void A_total_below_the_default_per_client_limit_lowers_that_limit_too()
    {
        var limits = Parse("""{ "limits": { "connections": 8 } }""").Limits;
        Assert.That((limits.MaxConnections, limits.MaxConnectionsPerClient), Is.EqualTo((8, 8)));
    }

    [Test]
    public void Every_message_is_one_line()
    {
        string[] bad = ["""{ "x": 1 }""", """{ "cache": { "globalDirtyLimit": "-1" } }""", """{ "listen": [1] }"""];

        Assert.That(bad.Select(ProblemWith), Has.None.Contain('\n'));
    }

    [Test]
    public void Load_names_the_file_and_the_line_of_a_json_error()
    {
        using var file = new TemporaryFile("{\n  \"store\": \"s\"\n  \"listen\": []\n}\n");

        var message = Assert.Throws<FormatException>(() => HostConfig.Load(file.Path))!.Message;

        Assert.That(message, Does.StartWith($"config {file.Path}: not valid JSON: line 3: "));
        Assert.That(message, Does.Not.Contain("LineNumber").And.Not.Contain('\n'));
    }

    [Test]
    public void Load_prefixes_a_problem_with_the_file_and_resolves_against_its_directory()
    {
        using var file = new TemporaryFile("""{ "store": "s", "log": { "level": "loud" } }""");

        Assert.That(Assert.Throws<FormatException>(() => HostConfig.Load(file.Path))!.Message,
            Does.StartWith($"config {file.Path}: log.level: 'loud'"));
        File.WriteAllText(file.Path, """{ "store": "s" }""");
        Assert.That(HostConfig.Load(file.Path).Store, Is.EqualTo(Path.Combine(Path.GetDirectoryName(file.Path)!, "s")));
    }

    [Test]
    public void A_missing_file_is_a_format_exception_naming_it()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-config-{Guid.NewGuid():N}.json");

        Assert.That(Assert.Throws<FormatException>(() => HostConfig.Load(missing))!.Message,
            Does.StartWith($"config {missing}: cannot read it: "));
    }

    /// <summary>The example in docs/ is the one people copy: it must load, and say what its comments say.</summary>
    [Test]
    public void The_example_config_in_docs_loads()
    {
        var config = HostConfig.Load(Path.Combine(Repository.Root, "docs", "config.example.json"));

        Assert.Multiple(() =>
        {
            Assert.That(config.Store, Is.EqualTo("/var/lib/blockoverlay/store"));
            Assert.That(config.Listen.Select(a => a.ToString()), Is.EqualTo(new[] { "unix:/run/blockoverlay/nbd.sock", "tcp:127.0.0.1:10809" }));
            Assert.That(config.SocketMode, Is.EqualTo(NbdServerOptions.DefaultUnixSocketMode), "the example's socket mode is said to be the default");
            Assert.That(config.Metrics, Is.EqualTo(new IPEndPoint(IPAddress.Loopback, 9810)));
            Assert.That(config.Exports, Is.Empty);
            Assert.That(config.Cache, Is.EqualTo(new CacheOptions()), "the example's cache values are said to be the defaults");
            Assert.That(config.Limits, Is.EqualTo(new NbdServerOptions()), "the example's limits are said to be the defaults");
            Assert.That(config.Tls, Is.EqualTo(new TlsSettings(TlsChoice.Off)), "the example's TLS is off, its files commented out");
            Assert.That(config.LogLevel, Is.EqualTo(LogLevel.Information));
            Assert.That(config.LogFormat, Is.EqualTo(LogFormat.Text));
            Assert.That(config.IoBackend, Is.EqualTo(IoBackend.Auto), "the example's backend is said to be the default");
        });
    }
}
