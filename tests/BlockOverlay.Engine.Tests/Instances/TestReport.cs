namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>
/// Figures a test wants seen in make test's output (dotnet test's quiet console shows no
/// test output): appended to the file tests/run-all names in BLOCKOVERLAY_TEST_REPORT.
/// </summary>
internal static class TestReport
{
    public static void Write(string line)
    {
        if (Environment.GetEnvironmentVariable("BLOCKOVERLAY_TEST_REPORT") is { Length: > 0 } report)
        {
            File.AppendAllText(report, line + Environment.NewLine);
        }
    }
}
