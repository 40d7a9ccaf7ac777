using System.Globalization;
using System.Text.Json;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Config;

/// <summary>
/// JSON logs, asked for by <c>--log-format json</c> or by the config: every line on standard
/// error is one JSON object with the documented fields, a log shipper can take the whole
/// stream (the attach hints for people are left out), and the level filters events.
/// </summary>
[NonParallelizable]
public class JsonLogTests
{
    private static readonly string[] Levels = ["Trace", "Debug", "Information", "Warning", "Error", "Critical"];

    private StoreWorkspace _ws = null!;

    private string Socket => _ws["nbd.sock"];

    [SetUp]
    public void CreateWorkspace() => _ws = new StoreWorkspace();

    [TearDown]
    public void DeleteWorkspace() => _ws.Dispose();

    [TestCase("flag")]
    [TestCase("config")]
    public void Every_line_on_stderr_is_a_json_event_with_the_documented_fields(string askedBy)
    {
        string[] args = askedBy == "flag"
            ? ["--export", "d=memory:1M", "--listen", "unix:" + Socket, "--log-format", "json"]
            : ["--config", WriteConfig("""{ "exports": ["d=memory:1M"], "listen": ["unix:nbd.sock"], "log": { "format": "json" } }""")];
        using var server = ConfiguredServer.Start(Socket, args);
        var size = ClientTool.Nbdinfo.Run("--size", $"nbd+unix:///d?socket={Socket}");
        var missing = ClientTool.Nbdinfo.Run("--size", $"nbd+unix:///missing?socket={Socket}");
        Assert.That(size.Stdout.Trim(), Is.EqualTo("1048576"), size.ToString);
        Assert.That(missing.ExitCode, Is.Not.Zero, missing.ToString);

        Assert.That(server.Stop(), Is.Zero, server.ToString);

        var events = server.StderrLines.Select(line => Parse(line, server)).ToList();
        Assert.Multiple(() =>
        {
            Assert.That(server.StdoutLines, Is.Empty, "stdout");
            foreach (var e in events)
            {
                Assert.That(DateTime.TryParseExact(e.GetProperty("Timestamp").GetString(), "yyyy-MM-ddTHH:mm:ss.fffZ",
                    CultureInfo.InvariantCulture, DateTimeStyles.None, out _), Is.True, e.ToString());
                Assert.That(e.GetProperty("EventId").ValueKind, Is.EqualTo(JsonValueKind.Number), e.ToString());
                Assert.That(e.GetProperty("LogLevel").GetString(), Is.AnyOf(Levels), e.ToString());
                Assert.That(e.GetProperty("Category").GetString(), Is.Not.Empty, e.ToString());
                Assert.That(e.GetProperty("Message").GetString(), Is.Not.Empty, e.ToString());
            }

            // listening, connection opened and closed, an export refused, stopping.
            Assert.That(events.Select(e => e.GetProperty("EventId").GetInt32()).Distinct(), Is.SupersetOf(new[] { 100, 102, 103, 106, 1 }), server.ToString);
            Assert.That(events.Any(e => e.GetProperty("Message").GetString()!.Contains("'missing'", StringComparison.Ordinal)), Is.True,
                "the refused export's name in the message");
        });
    }

    [Test]
    public void Log_level_warning_leaves_out_information_events()
    {
        using var server = ConfiguredServer.Start(Socket, ["--export", "d=memory:1M", "--listen", "unix:" + Socket, "--log-format", "json", "--log-level", "warning"]);
        ClientTool.Nbdinfo.Run("--size", $"nbd+unix:///d?socket={Socket}");

        Assert.That(server.Stop(), Is.Zero, server.ToString);
        Assert.That(server.StderrLines.Select(line => Parse(line, server).GetProperty("LogLevel").GetString()),
            Has.None.EqualTo("Information").And.None.EqualTo("Debug"), server.ToString);
    }

    private string WriteConfig(string json)
    {
        string path = _ws["config.json"];
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>One line as a JSON object (cloned, so it outlives its document); fails the test naming the line otherwise.</summary>
    private static JsonElement Parse(string line, ConfiguredServer server)
    {
        JsonElement? parsed = null;
        try
        {
            using var document = JsonDocument.Parse(line);
            parsed = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            // Not JSON at all: the assertion below fails with the line.
        }

        Assert.That(parsed?.ValueKind, Is.EqualTo(JsonValueKind.Object), $"not a JSON object: {line}\n{server}");
        return parsed!.Value;
    }
}
