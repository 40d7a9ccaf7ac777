using System.Globalization;
using System.Text;

namespace BlockOverlay.Clients.Tests.Guests;

/// <summary>
/// What a guest test's failure message shows: the tail of every guest console and server
/// log registered so far (a guest test has several of each, one after another).
/// </summary>
internal sealed class Evidence
{
    private const int TailLines = 40;

    private readonly List<(string Name, Func<string> Text)> _logs = [];

    /// <summary>Adds a log to show; it is read when a failure message is built.</summary>
    public void Add(string name, Func<string> text) => _logs.Add((name, text));

    public override string ToString()
    {
        var message = new StringBuilder();
        foreach (var (name, text) in _logs)
        {
            message.Append(CultureInfo.InvariantCulture, $"--- {name} (last {TailLines} lines) ---\n");
            message.Append(Tail(text()));
        }

        return message.ToString();
    }

    private static string Tail(string text)
    {
        var lines = text.TrimEnd().Split('\n');
        return string.Join('\n', lines.Length <= TailLines ? lines : lines[^TailLines..]) + "\n";
    }
}
