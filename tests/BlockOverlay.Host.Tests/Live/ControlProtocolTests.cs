using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using BlockOverlay.Host.Live;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>
/// The control socket's protocol: typed requests and replies, one JSON object per line. Every
/// record survives the trip; a request the server cannot read is refused with the reason, and
/// the server goes on serving.
/// </summary>
[TestFixture]
public sealed class ControlProtocolTests
{
    private static readonly InstanceRequest[] Requests =
    [
        new CreateRequest("a", Base: "/images/base.raw", Size: "1G", FlushMode: "global", Quota: "2G", Allow: ["uid:1000", "cert:CN=a, O=b"]),
        new CreateRequest("b", Base: null, Size: null, FlushMode: null, Quota: null, Allow: []),
        new DeleteRequest("a", Force: true),
        new ListRequest(),
        new StatRequest("a"),
        new SetRequest("a", FlushMode: "volatile", Quota: null, Allow: ["gid:5"], AllowAll: false),
        new SetRequest("a", FlushMode: null, Quota: null, Allow: [], AllowAll: false, IopsLimit: "200", BpsLimit: "64M", Weight: "300"),
        new CreateRequest("c", Base: null, Size: "1G", FlushMode: null, Quota: null, Allow: [], IopsLimit: "none", BpsLimit: null, Weight: "50"),
        new CommitRequest("a", "/tmp/a.raw"),
        new CloneRequest("a", "a2"),
    ];

    private static readonly ControlReply[] Replies =
    [
        new ProgressReport(1 << 20, 8 << 20),
        new InstanceCreated("a", 1L << 30, "/images/base.raw", "isolated", 0, ["uid:1000"]),
        new InstanceDeleted("a"),
        new InstanceList([new InstanceSummary("a", 4096, 0, "volatile", true, null), new InstanceSummary("b", 8192, 4096, "isolated", false, "/b.raw")]),
        Stat("a"),
        new InstanceChanged("a", "global", 0, null),
        new InstanceChanged("a", null, 1L << 20, ["uid:1", "gid:2"]),
        new InstanceChanged("a", null, null, null, IopsLimit: 200, BpsLimit: 0, Weight: 300),
        new InstanceCreated("c", 1L << 30, null, "isolated", 0, [], IopsLimit: 200, BpsLimit: 64L << 20, Weight: 50),
        new InstanceCommitted("a", "/tmp/a.raw", 1L << 30),
        new InstanceCloned("a", "a2", 4096),
        new CommandFailed("no instance named 'a'"),
        new RequestRefused("not JSON"),
        new InternalError("System.InvalidOperationException: double free"),
    ];

    [Test]
    public void Every_request_survives_the_trip()
    {
        Assert.That(Requests.Select(r => r.GetType()).Distinct(), Is.EquivalentTo(DerivedTypes<InstanceRequest>()), "one of each command");
        foreach (var request in Requests)
        {
            string line = JsonSerializer.Serialize(request, ControlJson.Default.InstanceRequest);
            Assert.That(line, Does.Not.Contain("\n"), "a message is one line");
            Assert.That(ControlServer.Read(line), Is.EqualTo(request).UsingPropertiesComparer(), line); // rule lists element by element
        }
    }

    [Test]
    public void Every_reply_survives_the_trip()
    {
        Assert.That(Replies.Select(r => r.GetType()).Distinct(), Is.EquivalentTo(DerivedTypes<ControlReply>()), "one of each reply");
        foreach (var reply in Replies)
        {
            string line = JsonSerializer.Serialize(reply, ControlJson.Default.ControlReply);
            var back = JsonSerializer.Deserialize(line, ControlJson.Default.ControlReply);
            Assert.That(back, Is.TypeOf(reply.GetType()), line);
            Assert.That(JsonSerializer.Serialize(back, ControlJson.Default.ControlReply), Is.EqualTo(line), "nothing lost on the way");
            if (reply is not InstanceList)
            {
                Assert.That(back, Is.EqualTo(reply).UsingPropertiesComparer(), line);   // an instance list's JSON is compared above
            }
        }
    }

    [TestCase("")]
    [TestCase("not json")]
    [TestCase("null")]
    [TestCase("[]")]
    [TestCase("{}")]
    [TestCase("""{"command":"explode","name":"a"}""")]
    [TestCase("""{"command":"stat"}""")]
    [TestCase("""{"command":"stat","name":null}""")]
    [TestCase("""{"command":"stat","name":"a","json":true}""")]
    [TestCase("""{"command":"delete","name":"a","force":"yes"}""")]
    public void A_request_that_is_not_one_is_a_JSON_error_saying_why(string line)
    {
        var error = Assert.Throws<JsonException>(() => ControlServer.Read(line));
        Assert.That(error!.Message, Is.Not.Empty);
    }

    [Test]
    public async Task The_server_refuses_a_malformed_request_with_the_reason_and_goes_on_serving()
    {
        string directory = Directory.CreateTempSubdirectory("blockoverlay-control-").FullName;
        try
        {
            var path = Path.Combine(directory, "store.control");
            var server = new ControlServer(path, (_, _, _) => Task.FromResult<InstanceResponse>(new InstanceList([])), NullLogger.Instance);
            await using (server)
            {
                server.Start();
                var refused = await ExchangeAsync(path, """{"command":"explode"}""");
                Assert.That(refused, Is.TypeOf<RequestRefused>());
                Assert.That(((RequestRefused)refused).Message, Is.Not.Empty);
                var rendered = InstanceText.Render(new ListRequest(), refused);
                Assert.That((rendered.ExitCode, rendered.Stdout), Is.EqualTo((2, "")));
                Assert.That(rendered.Stderr, Does.StartWith("blockoverlay: bad control request: "));

                Assert.That(await ExchangeAsync(path, JsonSerializer.Serialize<InstanceRequest>(new ListRequest(), ControlJson.Default.InstanceRequest)),
                    Is.TypeOf<InstanceList>(), "the next request is served");
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>A host starting hundreds of containers at once asks the control socket together.</summary>
    [Test]
    public async Task Two_hundred_clients_connecting_at_once_are_all_answered()
    {
        string directory = Directory.CreateTempSubdirectory("blockoverlay-control-").FullName;
        try
        {
            var path = Path.Combine(directory, "store.control");
            var server = new ControlServer(path, async (_, _, stop) =>
            {
                await Task.Delay(50, stop); // a command that takes a while, so connections pile up
                return new InstanceList([]);
            }, NullLogger.Instance);
            await using (server)
            {
                server.Start();
                string list = JsonSerializer.Serialize<InstanceRequest>(new ListRequest(), ControlJson.Default.InstanceRequest);
                var answers = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => ExchangeAsync(path, list)));
                Assert.That(answers, Has.All.TypeOf<InstanceList>());
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Test]
    public void Stat_as_json_is_the_stat_record_without_the_protocol_s_reply_tag()
    {
        var printed = InstanceText.Render(new StatRequest("a"), Stat("a"), json: true);

        const string Expected = """
            {"name":"a","virtualSize":4096,"base":null,"flushMode":"isolated","unclean":false,"quota":0,"allow":[],"iopsLimit":200,"bpsLimit":1048576,"weight":300,"quotaUsedBytes":0,"upperBytes":0,"extents":1,"served":true,"connections":2,"dirtyBytes":0,"flushes":3,"flushDataBytes":0,"flushMetaBytes":0,"flushSeconds":0.5,"writeBackBytes":0,"throttledSeconds":0,"limitWaitSeconds":1.5,"limitWaits":7}
            """;
        Assert.That(printed.Stdout, Is.EqualTo(Expected + "\n"));
        Assert.That(JsonSerializer.Serialize<ControlReply>(Stat("a"), ControlJson.Default.ControlReply),
            Does.StartWith("""{"reply":"stat","name":"a","virtualSize":4096,"""), "the same record on the socket, tagged");
    }

    [Test]
    public void The_cli_words_the_answers_as_before()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Text(new InstanceCreated("a", 1L << 30, null, "isolated", 0, [])), Is.EqualTo("created instance 'a' (1G, flush mode isolated)\n"));
            Assert.That(Text(new InstanceCreated("a", 4L << 20, "/b.raw", "global", 2L << 20, [])),
                Is.EqualTo("created instance 'a' (4M over /b.raw, flush mode global, quota 2M)\n"));
            Assert.That(Text(new InstanceChanged("a", "volatile", 0, null)), Is.EqualTo("instance 'a': flush mode volatile, no quota\n"));
            Assert.That(Text(new InstanceCreated("a", 1L << 30, null, "isolated", 0, ["uid:1000", "cert:CN=a, O=b"])),
                Is.EqualTo("created instance 'a' (1G, flush mode isolated, allowed uid:1000; cert:CN=a, O=b)\n"));
            Assert.That(Text(new InstanceChanged("a", null, null, [])), Is.EqualTo("instance 'a': allowed everyone\n"));
            Assert.That(Text(new InstanceChanged("a", null, null, null, IopsLimit: 200, BpsLimit: 0, Weight: 300)),
                Is.EqualTo("instance 'a': 200 I/O per second, no byte rate limit, weight 300\n"));
            Assert.That(Text(new InstanceCreated("a", 1L << 30, null, "isolated", 0, [], IopsLimit: 200, BpsLimit: 64L << 20)),
                Is.EqualTo("created instance 'a' (1G, flush mode isolated, 200 I/O per second, 64M per second)\n"));
            Assert.That(Text(new InstanceList([new InstanceSummary("a", 4L << 20, 0, "volatile", true, null)])), Is.EqualTo("a\t4M\t0\tvolatile,unclean\t-\n"));
            Assert.That(Text(new InstanceDeleted("a")), Is.EqualTo("deleted instance 'a'\n"));
            var failed = InstanceText.Render(new DeleteRequest("a", Force: false), new CommandFailed("no instance named 'a'"));
            Assert.That(failed, Is.EqualTo(new CommandOutcome(1, "", "blockoverlay instance delete: no instance named 'a'\n")));
        });
    }

    private static string Text(InstanceResponse response)
    {
        var outcome = InstanceText.Render(new ListRequest(), response);
        Assert.That(outcome.ExitCode, Is.Zero);
        return outcome.Stdout;
    }

    private static InstanceStat Stat(string name) =>
        new(name, 4096, null, "isolated", false, 0, [], 200, 1L << 20, 300, 0, 0, 1, true, 2, 0, 3, 0, 0, 0.5, 0, 0, 1.5, 7);

    private static IEnumerable<Type> DerivedTypes<T>() => typeof(T).GetCustomAttributes<JsonDerivedTypeAttribute>().Select(a => a.DerivedType);

    /// <summary>Sends one raw request line and reads the answer (skipping progress).</summary>
    private static async Task<InstanceResponse> ExchangeAsync(string path, string line)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync() is { } answer)
        {
            if (JsonSerializer.Deserialize(answer, ControlJson.Default.ControlReply) is InstanceResponse response)
            {
                return response;
            }
        }

        throw new IOException("no answer");
    }
}
