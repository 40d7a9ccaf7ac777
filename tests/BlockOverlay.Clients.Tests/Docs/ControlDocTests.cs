using System.Text.Json.Nodes;
using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.Docs;

/// <summary>
/// docs/CONTROL.md cannot drift from the server: its transcript is replayed, request by
/// request, through its example client (docs/examples/control.py) against a real server.
/// </summary>
public class ControlDocTests
{
    [Test]
    public void The_control_transcript_replays_through_the_example_client_with_the_answers_it_shows()
    {
        var exchanges = Transcript(File.ReadAllText(Path.Combine(ServerProcess.RepositoryRoot, "docs", "CONTROL.md")));
        Assert.That(exchanges.Select(e => Reply(e.Answer)), Is.SupersetOf(new[] { "created", "failed", "refused", "deleted" }),
            "the transcript shows an answer, a refused command and an unreadable request");

        using var ws = new StoreWorkspace();
        ws.CreateStore("256M");
        using var server = StoreServer.Start(ws);
        string control = ws.StorePath + ".control";
        foreach (var (request, answer) in exchanges)
        {
            var result = Tool.Run("/usr/bin/python3", [ExampleClient, control, request], TimeSpan.FromSeconds(30));
            Assert.Multiple(() =>
            {
                Assert.That(JsonNode.DeepEquals(JsonNode.Parse(result.Stdout), JsonNode.Parse(answer)), Is.True,
                    $"request {request}\nthe doc shows {answer}\n{result}");
                Assert.That(result.ExitCode, Is.EqualTo(Reply(answer) switch { "failed" => 1, "refused" => 2, _ => 0 }),
                    $"the CLI's exit code for a '{Reply(answer)}' answer\n{result}");
            });
        }

        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    [Test]
    public void The_example_client_creates_an_instance_that_is_served_when_the_answer_arrives()
    {
        using var ws = new StoreWorkspace();
        ws.CreateStore("64M");
        var image = ws.WriteRandomFile("base.raw", 1 << 20, seed: 14);
        using var server = StoreServer.Start(ws);

        // As a module, the way a runtime would use it: create, then attach at once.
        var script = $$"""
            import sys
            sys.path.insert(0, "{{Path.GetDirectoryName(ExampleClient)}}")
            import control
            print(control.create("{{ws.StorePath}}.control", "tenant1", base="{{ws["base.raw"]}}", quota="4M")["reply"])
            """;
        var created = Tool.Run("/usr/bin/python3", ["-c", script], TimeSpan.FromSeconds(30));
        Assert.That(created.Stdout.Trim(), Is.EqualTo("created"), created.ToString);

        var read = StoreNbdsh.Run(server, """
            h = connect("tenant1")
            print(h.pread(16, 0).hex())
            """);
        Assert.That(read.Trim(), Is.EqualTo(Convert.ToHexStringLower(image.AsSpan(0, 16))), "served over its base");
        Assert.That(server.Terminate(), Is.Zero, server.ToString);
    }

    private static string ExampleClient => Path.Combine(ServerProcess.RepositoryRoot, "docs", "examples", "control.py");

    private static string Reply(string answer) => JsonNode.Parse(answer)!["reply"]!.GetValue<string>();

    /// <summary>The "&gt; request" / "&lt; answer" pairs of the code block after the transcript marker.</summary>
    private static List<(string Request, string Answer)> Transcript(string doc)
    {
        var after = doc.Split("<!-- transcript -->", 2);
        Assert.That(after, Has.Length.EqualTo(2), "docs/CONTROL.md has its transcript marker");
        var lines = after[1].Split("```")[1].Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var pairs = new List<(string, string)>();
        for (int i = 0; i + 1 < lines.Length; i += 2)
        {
            Assert.That(lines[i], Does.StartWith("> "), "a request line");
            Assert.That(lines[i + 1], Does.StartWith("< "), "its answer");
            pairs.Add((lines[i][2..], lines[i + 1][2..]));
        }

        Assert.That(pairs, Has.Count.EqualTo(lines.Length / 2).And.Count.GreaterThan(0));
        return pairs;
    }
}
