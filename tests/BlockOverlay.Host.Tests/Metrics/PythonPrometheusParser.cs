using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace BlockOverlay.Host.Tests.Metrics;

internal sealed record ParsedSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

internal sealed record ParsedFamily(string Name, string Type, string Help, IReadOnlyList<ParsedSample> Samples);

/// <summary>
/// A real Prometheus parser, not ours: the text parser of the Python client library
/// (Debian python3-prometheus-client), run by the system python3. Our text goes in on
/// stdin; what the parser understood comes back as JSON.
/// </summary>
internal static class PythonPrometheusParser
{
    // The system python: a pyenv python3 earlier on PATH has no Debian modules.
    private const string Python = "/usr/bin/python3";
    private const int NoModule = 3;

    // Values go back as repr() strings: JSON has no infinities.
    private const string Script = """
        import json, sys
        try:
            from prometheus_client.parser import text_string_to_metric_families
        except ImportError:
            sys.exit(3)
        families = [
            {"name": f.name, "type": f.type, "help": f.documentation,
             "samples": [{"name": s.name, "labels": s.labels, "value": repr(s.value)} for s in f.samples]}
            for f in text_string_to_metric_families(sys.stdin.read())
        ]
        json.dump(families, sys.stdout)
        """;

    public static IReadOnlyList<ParsedFamily> Parse(string exposition)
    {
        if (!File.Exists(Python))
        {
            Assert.Ignore($"{Python} is not installed (`make deps` installs it)");
        }

        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        var startInfo = new ProcessStartInfo(Python)
        {
            ArgumentList = { "-c", Script },
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = utf8,
            StandardOutputEncoding = utf8,
            UseShellExecute = false,
        };
        startInfo.Environment["PYTHONIOENCODING"] = "utf-8";
        using var process = Process.Start(startInfo)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(exposition);
        process.StandardInput.Close();
        if (!process.WaitForExit(TimeSpan.FromSeconds(30)))
        {
            process.Kill();
            Assert.Fail("the Python parser was still running after 30 s");
        }

        process.WaitForExit();
        if (process.ExitCode == NoModule)
        {
            Assert.Ignore("the Python module prometheus_client is missing: it comes with the Debian package python3-prometheus-client (`make deps` installs it)");
        }

        Assert.That(process.ExitCode, Is.Zero, $"the Python parser refused the text:\n{stderr.Result}\n--- text ---\n{exposition}");
        return ToFamilies(stdout.Result);
    }

    private static List<ParsedFamily> ToFamilies(string json)
    {
        using var document = JsonDocument.Parse(json);
        return [.. document.RootElement.EnumerateArray().Select(family => new ParsedFamily(
            family.GetProperty("name").GetString()!,
            family.GetProperty("type").GetString()!,
            family.GetProperty("help").GetString()!,
            [.. family.GetProperty("samples").EnumerateArray().Select(sample => new ParsedSample(
                sample.GetProperty("name").GetString()!,
                sample.GetProperty("labels").EnumerateObject().ToDictionary(label => label.Name, label => label.Value.GetString()!),
                ParseRepr(sample.GetProperty("value").GetString()!)))]))];
    }

    private static double ParseRepr(string repr) => repr switch
    {
        "inf" => double.PositiveInfinity,
        "-inf" => double.NegativeInfinity,
        "nan" => double.NaN,
        _ => double.Parse(repr, CultureInfo.InvariantCulture),
    };
}
