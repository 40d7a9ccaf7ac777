using System.Diagnostics;
using System.Globalization;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// The progress bar of a long copy (a base import; instance commit uses it too): one line
/// on standard error, redrawn in place (carriage return) at most five times a second, with
/// the percentage, MiB done and the average rate. Only when standard error is a terminal:
/// in a log or a pipe a redrawn line is noise, and the result line on standard output
/// already tells the size, time and rate.
/// </summary>
internal sealed class ImportProgress
{
    private const double MiB = 1 << 20;
    private const int BarWidth = 30;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(200);

    private readonly TextWriter? _terminal;
    private readonly string _label;
    private readonly long _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _lastDraw;
    private int _lastWidth;

    private ImportProgress(TextWriter? terminal, string label, long total)
    {
        _terminal = terminal;
        _label = label;
        _total = total;
        _lastDraw = -RedrawInterval; // the first report draws
    }

    public TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>A bar on standard error if it is a terminal, else a silent one.</summary>
    public static ImportProgress OnStandardError(string label, long total) =>
        new(Console.IsErrorRedirected ? null : Console.Error, label, total);

    /// <summary>MiB per second for <paramref name="bytes"/> in <paramref name="elapsed"/>.</summary>
    public static double Rate(long bytes, TimeSpan elapsed) => bytes / MiB / Math.Max(elapsed.TotalSeconds, 1e-3);

    /// <summary><paramref name="done"/> bytes of the image are copied (redraws if it is time).</summary>
    public void Report(long done)
    {
        if (_terminal is not null && _clock.Elapsed - _lastDraw >= RedrawInterval)
        {
            Draw(done);
        }
    }

    /// <summary>Draws the finished bar and ends its line.</summary>
    public void Complete()
    {
        if (_terminal is not null)
        {
            Draw(_total);
            _terminal.WriteLine();
        }
    }

    /// <summary>Ends a drawn line, so that an error message starts on a line of its own.</summary>
    public void Abandon()
    {
        if (_terminal is not null && _lastWidth > 0)
        {
            _terminal.WriteLine();
        }
    }

    private void Draw(long done)
    {
        _lastDraw = _clock.Elapsed;
        double fraction = _total == 0 ? 1 : (double)done / _total;
        int filled = (int)(fraction * BarWidth);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{_label} [{new string('#', filled)}{new string('.', BarWidth - filled)}] {fraction * 100,3:0}%  " +
            $"{done / MiB:0.0}/{_total / MiB:0.0} MiB  {Rate(done, _lastDraw):0.0} MiB/s");

        // Pad over what a longer previous line left on the screen.
        _terminal!.Write("\r" + line.PadRight(_lastWidth));
        _terminal.Flush();
        _lastWidth = line.Length;
    }
}
