using System.Net;
using System.Net.Sockets;
using BlockOverlay.Nbd.Listeners;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>Binding: a port already served is an error, not a silent share; a unix socket is 0660 whatever the umask.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
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

    [Test]
    public async Task A_unix_socket_is_created_for_its_owner_and_group_only()
    {
        // The umask would give 0755 (or 0777 under umask 0): anyone could connect.
        var directory = Directory.CreateTempSubdirectory("blockoverlay-listen-");
        try
        {
            string path = Path.Combine(directory.FullName, "nbd.sock");
            await using var server = new NbdServer(new ExportCatalog(), new NbdServerOptions(), NullLoggerFactory.Instance);
            server.Listen(ListenAddress.Parse("unix:" + path));
            Assert.That(File.GetUnixFileMode(path),
                Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite), "0660");
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }
}
