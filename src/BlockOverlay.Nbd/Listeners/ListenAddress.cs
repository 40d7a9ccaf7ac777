using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace BlockOverlay.Nbd.Listeners;

/// <summary>
/// Where the server listens: <c>tcp:HOST:PORT</c> (IPv6 hosts in brackets) or
/// <c>unix:PATH</c>. Parsed once, with an error that names what is wrong.
/// </summary>
public sealed record ListenAddress(EndPoint EndPoint)
{
    /// <summary>The IANA port of NBD.</summary>
    public const int DefaultPort = 10809;

    public static ListenAddress Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.StartsWith("unix:", StringComparison.Ordinal))
        {
            string path = text["unix:".Length..];
            return path.Length == 0
                ? throw new FormatException($"'{text}': a unix socket needs a path, as in unix:/run/blockoverlay.sock")
                : new ListenAddress(new UnixDomainSocketEndPoint(Path.GetFullPath(path)));
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

    public override string ToString() => EndPoint switch
    {
        UnixDomainSocketEndPoint unix => $"unix:{unix}",
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"tcp:[{ip.Address}]:{ip.Port}",
        IPEndPoint ip => $"tcp:{ip.Address}:{ip.Port}",
        _ => EndPoint.ToString() ?? "?",
    };
}
