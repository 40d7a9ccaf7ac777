using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BlockOverlay.Host;

/// <summary>
/// What a person needs to attach once the server is up: every export's URIs on every
/// listener, and copy-paste commands for the common clients.
/// </summary>
internal static class AttachHints
{
    public static string Describe(IEnumerable<string> exports, IEnumerable<EndPoint> endPoints)
    {
        var uris = endPoints.Select(UriBase).OfType<Func<string, string>>().ToList();
        var text = new StringBuilder();
        foreach (string export in exports)
        {
            var forExport = uris.Select(u => u(export)).ToList();
            if (forExport.Count == 0)
            {
                continue;
            }

            string first = forExport[0];
            text.AppendLine($"export '{export}':");
            forExport.ForEach(u => text.AppendLine($"  {u}"));
            text.AppendLine($"  nbdinfo '{first}'");
            text.AppendLine($"  qemu-io -f raw '{first}' -c 'write -P 0xab 0 4k' -c 'read -P 0xab 0 4k'");
            text.AppendLine($"  qemu-img convert -n -O raw disk.raw '{first}'");
            text.AppendLine($"  qemu-system-x86_64 ... -drive file={first},format=raw,if=virtio,cache=writeback");
            if (forExport.FirstOrDefault(u => u.StartsWith("nbd://", StringComparison.Ordinal)) is { } tcp)
            {
                var uri = new Uri(tcp);
                text.AppendLine($"  nbd-client {uri.Host} {uri.Port} /dev/nbd0 -N {export}   (where the nbd module is loaded)");
            }
        }

        return text.ToString();
    }

    private static Func<string, string>? UriBase(EndPoint endPoint) => endPoint switch
    {
        UnixDomainSocketEndPoint unix => name => $"nbd+unix:///{Uri.EscapeDataString(name)}?socket={unix}",
        IPEndPoint { AddressFamily: AddressFamily.InterNetworkV6 } ip => name => $"nbd://[{ip.Address}]:{ip.Port}/{Uri.EscapeDataString(name)}",
        IPEndPoint ip => name => $"nbd://{ip.Address}:{ip.Port}/{Uri.EscapeDataString(name)}",
        _ => null,
    };
}
