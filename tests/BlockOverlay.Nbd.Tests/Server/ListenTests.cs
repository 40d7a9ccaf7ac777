using System.Net;
using System.Net.Sockets;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>Binding: a port already served is an error, not a silent share.</summary>
public class ListenTests
{
    [Test]
    public async Task A_second_server_on_the_same_tcp_port_fails_to_bind()
    {
        await using var first = new NbdServer(new ExportCatalog(), new NbdServerOptions(), NullLoggerFactory.Instance);
        var bound = (IPEndPoint)first.Listen(ListenAddress.Parse("tcp:127.0.0.1:0"));
        await using var second = new NbdServer(new ExportCatalog(), new NbdServerOptions(), NullLoggerFactory.Instance);

        // With SO_REUSEPORT both would bind and the kernel would split connections between them.
        Assert.Throws<SocketException>(() => second.Listen(ListenAddress.Parse($"tcp:127.0.0.1:{bound.Port}")));
    }
}
