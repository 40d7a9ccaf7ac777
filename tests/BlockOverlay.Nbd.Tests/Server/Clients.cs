using BlockOverlay.LibNbd;

namespace BlockOverlay.Nbd.Tests.Server;

/// <summary>libnbd handles connected to a <see cref="TestServer"/>, negotiated the way real tools do.</summary>
internal static class Clients
{
    public static NbdClient Connect(TestServer server, string export, StrictMode? strict = null)
    {
        var client = new NbdClient();
        try
        {
            client.AddMetaContext(MetaContexts.BaseAllocation);
            if (strict is { } mode)
            {
                client.SetStrictMode(mode);
            }

            client.ConnectUri(server.Uri(export));
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    public static byte[] Read(this NbdClient client, int length, ulong offset, CommandFlags flags = CommandFlags.None)
    {
        var buffer = new byte[length];
        client.Pread(buffer, offset, flags);
        return buffer;
    }
}
