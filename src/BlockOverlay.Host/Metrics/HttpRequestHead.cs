using System.Text;

namespace BlockOverlay.Host.Metrics;

/// <summary>
/// What the metrics endpoint needs from an HTTP/1.x request head: the method and the path.
/// <para>
/// The head is checked as RFC 9112 asks of a server, no further: a request line of exactly
/// three parts separated by single spaces (a token method, an origin-form target, HTTP/1.0 or
/// HTTP/1.1), then header lines that each have a token name before a colon (no line folding).
/// Header values are not looked at: the endpoint answers every request the same way and
/// closes the connection, so nothing in them could change the answer. Anything else is
/// not HTTP and gets 400.
/// </para>
/// </summary>
internal readonly record struct HttpRequestHead(string Method, string Path)
{
    /// <summary>Parses a head given without its closing blank line; null when it is malformed.</summary>
    public static HttpRequestHead? TryParse(ReadOnlySpan<byte> head)
    {
        int lineEnd = head.IndexOf("\r\n"u8);
        var requestLine = lineEnd < 0 ? head : head[..lineEnd];
        return TryParseRequestLine(requestLine) is { } request && HeaderLinesAreWellFormed(lineEnd < 0 ? [] : head[(lineEnd + 2)..])
            ? request
            : null;
    }

    private static HttpRequestHead? TryParseRequestLine(ReadOnlySpan<byte> line)
    {
        int firstSpace = line.IndexOf((byte)' ');
        int lastSpace = line.LastIndexOf((byte)' ');
        if (firstSpace <= 0 || lastSpace <= firstSpace + 1)
        {
            return null;
        }

        var method = line[..firstSpace];
        var target = line[(firstSpace + 1)..lastSpace];
        var version = line[(lastSpace + 1)..];
        bool wellFormed = IsToken(method)
                          && target[0] == (byte)'/' && IsVisibleAscii(target)
                          && (version.SequenceEqual("HTTP/1.1"u8) || version.SequenceEqual("HTTP/1.0"u8));
        if (!wellFormed)
        {
            return null;
        }

        // The query, if any, is ignored: the one resource has no parameters.
        int query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        return new HttpRequestHead(Encoding.ASCII.GetString(method), Encoding.ASCII.GetString(path));
    }

    private static bool HeaderLinesAreWellFormed(ReadOnlySpan<byte> lines)
    {
        if (lines.IsEmpty)
        {
            return true; // No header lines at all (an HTTP/1.0 request may have none).
        }

        foreach (var range in lines.Split("\r\n"u8))
        {
            var line = lines[range];
            int colon = line.IndexOf((byte)':');
            if (colon <= 0 || !IsToken(line[..colon]))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>RFC 9110 token: one or more visible ASCII characters other than delimiters.</summary>
    private static bool IsToken(ReadOnlySpan<byte> text)
    {
        foreach (byte b in text)
        {
            bool allowed = char.IsAsciiLetterOrDigit((char)b) || "!#$%&'*+-.^_`|~"u8.Contains(b);
            if (!allowed)
            {
                return false;
            }
        }

        return text.Length > 0;
    }

    private static bool IsVisibleAscii(ReadOnlySpan<byte> text)
    {
        foreach (byte b in text)
        {
            if (b is <= 0x20 or >= 0x7F)
            {
                return false;
            }
        }

        return true;
    }
}
