using BlockOverlay.Clients.Tests.Fixtures;

namespace BlockOverlay.Clients.Tests.HostClients;

/// <summary>
/// The disk several host-client tests start from: an 8 MiB instance over a base of 3 MiB and
/// 1000 bytes (data, a hole in the second MiB, data), changed by qemu-io in each way a client
/// can change it: patterns over base data, over the base's hole and past the base's end, an
/// unaligned write, a trim of written data, zeroes that may unmap and zeroes that must not.
/// </summary>
internal static class PartlyWrittenInstance
{
    public const long K = 1 << 10;
    public const long M = 1 << 20;
    public const long Size = 8 * M;

    /// <summary>Not a multiple of 4 KiB, so the base ends inside a block of the instance.</summary>
    public const int BaseSize = (3 << 20) + 1000;

    /// <summary>In order; the nbdinfo tests spell out the maps these leave.</summary>
    public static readonly QemuIoEdit[] Edits =
    [
        QemuIoEdit.Write(64 * K, (int)(64 * K), 0x11),      // over base data
        QemuIoEdit.Discard(96 * K, (int)(32 * K)),          // trims half of that write again
        QemuIoEdit.ZeroMayUnmap(256 * K, (int)(128 * K)),   // over base data
        QemuIoEdit.Write(1088 * K, (int)(32 * K), 0x22),    // over the base's hole
        QemuIoEdit.Zero(2112 * K, (int)(16 * K)),           // NO_HOLE over base data: stored zero blocks
        QemuIoEdit.Write(5 * M, (int)(8 * K), 0x33),        // past the base's end
        QemuIoEdit.Write((7 * M) + 100, 200, 0x44),         // inside one block, unaligned
    ];

    /// <summary>Writes the base image into the workspace and returns its bytes.</summary>
    public static byte[] CreateBase(StoreWorkspace ws, string name, int seed) =>
        ws.WriteSparseFile(name, BaseSize, seed, (0, (int)M), (2 * M, BaseSize - (int)(2 * M)));

    /// <summary>Applies <see cref="Edits"/> with qemu-io (write-back, then flush); returns what the instance must now hold.</summary>
    public static byte[] Edit(StoreServer server, string export, byte[] baseImage)
    {
        QemuIo.Run(server, server.UnixUri(export), ["-t", "writeback"], [.. Edits.Select(e => e.Command), "flush"]);
        return QemuIoEdit.Apply(ExportContent.Resized(baseImage, Size), Edits);
    }
}
