using System.Net.Sockets;
using System.Runtime.InteropServices;
using BlockOverlay.Exports;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Who is at the other end of a unix socket, from the kernel: SO_PEERCRED (the uid and gid the
/// peer had when it connected) and SO_PEERGROUPS (its supplementary groups). A socket that is not
/// a unix socket, or a kernel that will not say, gives <see cref="PeerIdentity.Anonymous"/>.
/// </summary>
public static class PeerCredentials
{
    private const int SolSocket = 1, SoPeerCred = 17, SoPeerGroups = 59;

    /// <summary>Groups read past the primary one; a peer in more is matched on its primary group only.</summary>
    private const int MaxGroups = 1024;

    public static PeerIdentity Of(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (socket.AddressFamily != AddressFamily.Unix)
        {
            return PeerIdentity.Anonymous;
        }

        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        Span<byte> credentials = stackalloc byte[12];
        if (socket.GetRawSocketOption(SolSocket, SoPeerCred, credentials) != credentials.Length)
        {
            return PeerIdentity.Anonymous;
        }

        uint uid = BitConverter.ToUInt32(credentials[4..]), gid = BitConverter.ToUInt32(credentials[8..]);
        return new PeerIdentity { Uid = uid, Gids = [gid, .. SupplementaryGroups(socket).Where(g => g != gid)] };
    }

    private static uint[] SupplementaryGroups(Socket socket)
    {
        var groups = new byte[MaxGroups * sizeof(uint)];
        try
        {
            int length = socket.GetRawSocketOption(SolSocket, SoPeerGroups, groups);
            return MemoryMarshal.Cast<byte, uint>(groups.AsSpan(0, length)).ToArray();
        }
        catch (SocketException)
        {
            return []; // ERANGE (more groups than we read) or a kernel before 4.13
        }
    }
}
