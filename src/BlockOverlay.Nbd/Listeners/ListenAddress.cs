using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BlockOverlay.Nbd.Listeners;

/// <summary>
/// Where the server listens: <c>tcp:HOST:PORT</c> (IPv6 hosts in brackets) or
/// <c>unix:PATH</c>. Parsed once, with an error that names what is wrong.
/// </summary>
public sealed record ListenAddress(EndPoint EndPoint)
{
    /// <summary>The IANA port of NBD.</summary>
    public const int DefaultPort = 10809;

    /// <summary>The longest unix socket path in bytes: Linux's sun_path (108) less its NUL terminator.</summary>
    public const int MaxUnixPathBytes = 107;

    public static ListenAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            return new ListenAddress(new UnixDomainSocketEndPoint(UnixPath(text, text["unix:".Length..])));
        }

        if (text.StartsWith("tcp:", StringComparison.Ordinal))
        {
            string hostPort = text["tcp:".Length..];
            int colon = hostPort.LastIndexOf(':');
            if (colon <= 0)
            {
                throw new FormatException($"'{text}': expected tcp:HOST:PORT, as in tcp:127.0.0.1:{DefaultPort}");
            }

            string host = hostPort[..colon].Trim('[', ']');
            if (!IPAddress.TryParse(host, out var address))
            {
                address = host == "localhost"
                    ? IPAddress.Loopback
                    : throw new FormatException($"'{text}': '{host}' is not an IP address");
            }

            return !int.TryParse(hostPort[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535
                ? throw new FormatException($"'{text}': '{hostPort[(colon + 1)..]}' is not a port number (0-65535)")
                : new ListenAddress(new IPEndPoint(address, port));
        }

        throw new FormatException($"'{text}': a listen address starts with tcp: or unix:");
    }

    /// <summary>
    /// The socket path made absolute, refused here with a <see cref="FormatException"/> when
    /// it cannot be one (empty, a NUL in it, too long), since the socket types would only call
    /// it a bad argument.
    /// </summary>
    private static string UnixPath(string text, string path)
    {
        if (path.Length == 0)
        {
            throw new FormatException($"'{text}': a unix socket needs a path, as in unix:/run/blockoverlay.sock");
        }

        if (path.Contains('\0', StringComparison.Ordinal))
        {
            throw new FormatException($"'{text.Replace("\0", "\\0", StringComparison.Ordinal)}': a unix socket path cannot contain a NUL character");
        }

        string full = Path.GetFullPath(path);
        int bytes = Encoding.UTF8.GetByteCount(full);
        return bytes <= MaxUnixPathBytes
            ? full
            : throw new FormatException($"'{text}': the socket path {full} is {bytes} bytes long; a unix socket path has at most {MaxUnixPathBytes}");
    }

    public override string ToString() => EndPoint switch
    {
        UnixDomainSocketEndPoint unix => $"unix:{unix}",
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"tcp:[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"tcp:{ip.Address}:{ip.Port}",
        _ => EndPoint.ToString() ?? "?",
    };
}
