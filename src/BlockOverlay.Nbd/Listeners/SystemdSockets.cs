using System.Globalization;
using System.Net.Sockets;

namespace BlockOverlay.Nbd.Listeners;

/// <summary>
/// Listening sockets handed over by systemd socket activation (sd_listen_fds(3)):
/// <c>LISTEN_PID</c> names this process and <c>LISTEN_FDS</c> counts descriptors
/// starting at 3. The variables are cleared once read, so children do not inherit them.
/// </summary>
public static class SystemdSockets
{
    private const int FirstDescriptor = 3;

    public static IReadOnlyList<Socket> Take()
    {
        string? pid = Environment.GetEnvironmentVariable("LISTEN_PID");
        string? count = Environment.GetEnvironmentVariable("LISTEN_FDS");
        if (pid is null || count is null)
        {
            return [];
        }

        Environment.SetEnvironmentVariable("LISTEN_PID", null);
        Environment.SetEnvironmentVariable("LISTEN_FDS", null);
        Environment.SetEnvironmentVariable("LISTEN_FDNAMES", null);
        if (!int.TryParse(pid, NumberStyles.None, CultureInfo.InvariantCulture, out int forPid) || forPid != Environment.ProcessId)
        {
            return [];
        }

        if (!int.TryParse(count, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n <= 0)
        {
            throw new InvalidOperationException($"LISTEN_FDS='{count}' is not a positive number of sockets");
        }

        var sockets = new List<Socket>(n);
        for (int fd = FirstDescriptor; fd < FirstDescriptor + n; fd++)
        {
            sockets.Add(new Socket(new SafeSocketHandle(fd, ownsHandle: true)));
        }

        return sockets;
    }
}
