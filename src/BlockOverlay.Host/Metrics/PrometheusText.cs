using System.Globalization;
using System.Text;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// Writes the Prometheus text exposition format, version 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/).
/// <para>
/// Usage: <see cref="Family"/> opens a metric family (its <c># HELP</c> and <c># TYPE</c>
/// lines, written even if no sample follows, so a scraper always learns the metric exists),
/// then <see cref="Sample(double, ReadOnlySpan{ValueTuple{string, string}})"/> or
/// <see cref="Histogram"/> add that family's samples. Everything is checked before a line
/// is written (names, label names, a sample of the right type, no family twice, no label
/// twice), so a mistake throws instead of producing text a scraper rejects as a whole.
/// </para>
/// <para>
/// Numbers are written in the invariant culture: infinities as <c>+Inf</c>/<c>-Inf</c>,
/// integral values below 2^63 as plain integers (byte counters never turn into
/// <c>1.2E+15</c>), anything else in the shortest form that reads back to the same double.
/// </para>
/// </summary>
internal sealed class PrometheusText
{
    private readonly StringBuilder _text = new();
    private readonly HashSet<string> _families = new(StringComparer.Ordinal);
    private string? _family;
    private MetricType _type;

    /// <summary>Opens a family: its samples follow until the next call.</summary>
    public void Family(string name, MetricType type, string help)
    {
        RequireMetricName(name);
        ArgumentNullException.ThrowIfNull(help);
        if (!_families.Add(name))
        {
            throw new ArgumentException($"metric family '{name}' is written twice", nameof(name));
        }

        _family = name;
        _type = type;
        _text.Append("# HELP ").Append(name).Append(' ');
        AppendEscaped(help, escapeQuotes: false);
        _text.Append("\n# TYPE ").Append(name).Append(' ').Append(TypeName(type)).Append('\n');
    }

    /// <summary>A sample of the open counter or gauge family. Counters cannot be negative or NaN.</summary>
    public void Sample(double value, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        string family = RequireScalarFamily(labels);
        if (_type == MetricType.Counter && !(value >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, $"counter '{family}' cannot be negative or NaN");
        }

        AppendSample(family, labels, le: null, FormatValue(value));
    }

    /// <summary>A sample of the open counter or gauge family, exact however large (a double would round above 2^53).</summary>
    public void Sample(long value, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        string family = RequireScalarFamily(labels);
        if (_type == MetricType.Counter && value < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(value), value, $"counter '{family}' cannot be negative");
        }

        AppendSample(family, labels, le: null, value.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// One histogram of the open histogram family: a cumulative <c>_bucket</c> line per upper
    /// bound and one for <c>le="+Inf"</c>, then <c>_sum</c> and <c>_count</c>.
    /// </summary>
    public void Histogram(HistogramSnapshot histogram, params ReadOnlySpan<(string Name, string Value)> labels)
    {
        ArgumentNullException.ThrowIfNull(histogram);
        string family = RequireFamily();
        if (_type != MetricType.Histogram)
        {
            throw new InvalidOperationException($"'{family}' is a {TypeName(_type)}: its samples are written with Sample");
        }

        RequireLabels(labels, reserved: "le");
        long cumulative = 0;
        for (int i = 0; i < histogram.UpperBounds.Count; i++)
        {
            cumulative += histogram.BucketCounts[i];
            AppendSample(family + "_bucket", labels, FormatValue(histogram.UpperBounds[i]), cumulative.ToString(CultureInfo.InvariantCulture));
        }

        AppendSample(family + "_bucket", labels, "+Inf", histogram.Count.ToString(CultureInfo.InvariantCulture));
        AppendSample(family + "_sum", labels, le: null, FormatValue(histogram.Sum));
        AppendSample(family + "_count", labels, le: null, histogram.Count.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>The exposition so far; every line, the last included, ends in a newline.</summary>
    public override string ToString() => _text.ToString();

    /// <summary>A sample value or bucket bound as the format spells it.</summary>
    internal static string FormatValue(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        double.NaN => "NaN",
        // 2^63 itself does not fit a long; below it every integral double converts exactly.
        _ when double.IsInteger(value) && Math.Abs(value) < 9223372036854775808.0 => ((long)value).ToString(CultureInfo.InvariantCulture),
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private string RequireScalarFamily(ReadOnlySpan<(string Name, string Value)> labels)
    {
        string family = RequireFamily();
        if (_type == MetricType.Histogram)
        {
            throw new InvalidOperationException($"'{family}' is a histogram: its samples are written with Histogram");
        }

        RequireLabels(labels, reserved: null);
        return family;
    }

    private string RequireFamily() =>
        _family ?? throw new InvalidOperationException("a sample needs a metric family first: call Family");

    private static void RequireLabels(ReadOnlySpan<(string Name, string Value)> labels, string? reserved)
    {
        for (int i = 0; i < labels.Length; i++)
        {
            var (name, value) = labels[i];
            RequireLabelName(name);
            ArgumentNullException.ThrowIfNull(value, $"value of label '{name}'");
            if (name == reserved)
            {
                throw new ArgumentException($"label '{name}' is written by the histogram itself", nameof(labels));
            }

            for (int j = 0; j < i; j++)
            {
                if (labels[j].Name == name)
                {
                    throw new ArgumentException($"label '{name}' is given twice", nameof(labels));
                }
            }
        }
    }

    private void AppendSample(string name, ReadOnlySpan<(string Name, string Value)> labels, string? le, string value)
    {
        _text.Append(name);
        if (labels.Length > 0 || le is not null)
        {
            char separator = '{';
            foreach (var (labelName, labelValue) in labels)
            {
                _text.Append(separator).Append(labelName).Append("=\"");
                AppendEscaped(labelValue, escapeQuotes: true);
                _text.Append('"');
                separator = ',';
            }

            if (le is not null)
            {
                _text.Append(separator).Append("le=\"").Append(le).Append('"');
            }

            _text.Append('}');
        }

        _text.Append(' ').Append(value).Append('\n');
    }

    /// <summary>Backslash and newline are escaped in HELP text and label values; double quotes in label values only.</summary>
    private void AppendEscaped(string text, bool escapeQuotes)
    {
        foreach (char c in text)
        {
            switch (c)
            {
                case '\\':
                    _text.Append(@"\\");
                    break;
                case '\n':
                    _text.Append(@"\n");
                    break;
                case '"' when escapeQuotes:
                    _text.Append("\\\"");
                    break;
                default:
                    _text.Append(c);
                    break;
            }
        }
    }

    private static string TypeName(MetricType type) => type switch
    {
        MetricType.Counter => "counter",
        MetricType.Gauge => "gauge",
        MetricType.Histogram => "histogram",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "not a metric type"),
    };

    private static void RequireMetricName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsName(name, allowColon: true))
        {
            throw new ArgumentException($"'{name}' is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)", nameof(name));
        }
    }

    private static void RequireLabelName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsName(name, allowColon: false) || name.StartsWith("__", StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)", nameof(name));
        }
    }

    private static bool IsName(string name, bool allowColon)
    {
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            bool allowed = char.IsAsciiLetter(c) || c == '_' || (allowColon && c == ':') || (i > 0 && char.IsAsciiDigit(c));
            if (!allowed)
            {
                return false;
            }
        }

        return name.Length > 0;
    }
}
