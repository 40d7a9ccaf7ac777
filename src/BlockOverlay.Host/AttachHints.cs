using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BlockOverlay.Host;

/// <summary>
/// What a person needs to attach once the server is up: every export's URIs on every
/// listener, and one copy-paste command per common client. Each line runs as printed in a
/// shell: arguments with URI or shell characters are single-quoted, and what the line needs
/// beyond itself is a trailing <c>#</c> comment. Local tools get the unix socket URI when
/// there is one (no TCP stack in the way); nbd-client gets the TCP address, the only kind of
/// address its command line takes as HOST PORT. When TLS is required, plain URIs would only
/// be refused: the URIs are the TLS ones (nbds) with the client's certificate directory left
/// as DIR, and nbdinfo is the one command shown (the README's TLS paragraph has qemu's).
/// A server of thousands of instances gets the hints of the first few and one line for the
/// rest: all of them were 70,000 lines and a fifth of the CPU of a start with 10,000 instances.
/// </summary>
internal static class AttachHints
{
    /// <summary>Exports whose hints are written in full; the others are counted.</summary>
    internal const int Shown = 8;

    public static string Describe(IEnumerable<string> exports, IEnumerable<EndPoint> endPoints, bool tlsRequired = false)
    {
        var listeners = endPoints.ToList();
        var tcp = listeners.OfType<IPEndPoint>().FirstOrDefault();
        var text = new StringBuilder();
        int seen = 0;
        foreach (string export in exports)
        {
            if (++seen > Shown)
            {
                continue;
            }

            var uris = listeners.Select(e => UriOf(e, export)).OfType<string>().ToList();
            if (uris.Count == 0)
            {
                continue;
            }

            string local = uris.FirstOrDefault(u => u.StartsWith("nbd+unix:", StringComparison.Ordinal)) ?? uris[0];
            if (tlsRequired)
            {
                text.AppendLine($"export '{export}' (TLS required; DIR: ca-cert.pem, client-cert.pem, client-key.pem):");
                uris.ForEach(u => text.AppendLine($"  {WithTls(u)}"));
                text.AppendLine($"  nbdinfo {Quote(WithTls(local))}");
                continue;
            }

            text.AppendLine($"export '{export}':");
            uris.ForEach(u => text.AppendLine($"  {u}"));
            text.AppendLine($"  nbdinfo --map {Quote(local)}");
            text.AppendLine($"  qemu-img convert -p -O qcow2 {Quote(local)} {Quote(export + ".qcow2")}   # a copy of the disk as it is now");
            text.AppendLine($"  qemu-io -f raw {Quote(local)} -c 'read -v 0 512'");
            text.AppendLine($"  qemu-system-x86_64 -m 512 -drive {Quote(QemuDrive(local))} ...   # plus your guest's options; the disk is its /dev/vda");
            if (tcp is not null)
            {
                text.AppendLine($"  nbd-client {tcp.Address} {tcp.Port} /dev/nbd0 -N {Quote(export)} -b 4096   # on a machine with the nbd kernel module (modprobe nbd)");
            }
        }

        if (seen > Shown && listeners.Select(e => UriOf(e, "")).OfType<string>().FirstOrDefault() is { } server)
        {
            text.AppendLine($"and {seen - Shown:N0} more exports, attached the same way by name; to list them all:");
            text.AppendLine($"  nbdinfo --list {Quote(tlsRequired ? WithTls(server) : server)}");
        }

        return text.ToString();
    }

    private static string? UriOf(EndPoint endPoint, string export) => endPoint switch
    {
        // The socket path is absolute (listen addresses are made absolute when parsed), so the
        // URI works from any directory.
        UnixDomainSocketEndPoint unix => $"nbd+unix:///{Uri.EscapeDataString(export)}?socket={unix}",
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => $"nbd://[{ip.Address}]:{ip.Port}/{Uri.EscapeDataString(export)}",
        IPEndPoint ip => $"nbd://{ip.Address}:{ip.Port}/{Uri.EscapeDataString(export)}",
        _ => null,
    };

    /// <summary>The URI for libnbd's TLS client: nbds, with the certificate directory to fill in.</summary>
    private static string WithTls(string uri) =>
        "nbds" + uri["nbd".Length..] + (uri.Contains('?', StringComparison.Ordinal) ? "&" : "?") + "tls-certificates=DIR";

    /// <summary>qemu's -drive value; a comma inside a value is written twice in qemu's option syntax.</summary>
    private static string QemuDrive(string uri) =>
        $"file={uri.Replace(",", ",,", StringComparison.Ordinal)},format=raw,if=virtio,cache=writeback";

    /// <summary>The argument as a POSIX shell reads it back: bare when safe, else in single quotes.</summary>
    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_=+/.:,@%".Contains(c))
            ? arg
            : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
