using BlockOverlay.Io;
using BlockOverlay.Store.Format;
using L = BlockOverlay.Store.Format.SuperblockLayout;

namespace BlockOverlay.Store.Checking;

/// <summary>The two superblock copies as found: each valid one decoded (null when it is not), and which the store opens with.</summary>
internal sealed record SuperblockCopies(Superblock? A, Superblock? B)
{
    /// <summary>The valid copy with the higher generation: what recovery uses.</summary>
    public Superblock? Newest => A is null ? B : B is null || A.Generation > B.Generation ? A : B;

    /// <summary>The block the newest copy was read from.</summary>
    public long NewestBlock => ReferenceEquals(Newest, A) ? 0 : 1;

    public static string Name(long block) => block == 0 ? "copy A (block 0)" : "copy B (block 1)";
}

/// <summary>
/// Both superblock copies: each decoded and validated as opening does (<see cref="Superblock.Decode"/>),
/// then compared: same store, same geometry, each generation in the block it is written to.
/// </summary>
internal static class SuperblockCheck
{
    private const int BlockSize = Superblock.Size;

    public static async Task<SuperblockCopies> RunAsync(IBlockDevice device, CheckLog log)
    {
        long deviceBlocks = device.Size / BlockSize;
        var copies = new Superblock?[2];
        var problems = new string?[2];
        bool store = false;
        using var buffer = new AlignedBuffer(BlockSize);
        for (int copy = 0; copy < 2; copy++)
        {
            await device.ReadAsync(copy * BlockSize, buffer.Memory);
            store |= Superblock.HasMagic(buffer.Span);
            try
            {
                copies[copy] = Superblock.Decode(buffer.Span, $"superblock {SuperblockCopies.Name(copy)}", deviceBlocks);
            }
            catch (StoreFormatException e)
            {
                problems[copy] = e.Message;
            }
        }

        var found = new SuperblockCopies(copies[0], copies[1]);
        if (!store)
        {
            // Not a damaged store but none at all: refused as opening refuses it, not reported as a finding.
            throw new StoreFormatException($"not a store: {problems[0]}; {problems[1]}");
        }

        if (found.Newest is not { } newest)
        {
            log.Problem(StoreProblemKind.NoSuperblock, $"{problems[0]}; {problems[1]}");
            return found;
        }

        for (int copy = 0; copy < 2; copy++)
        {
            if (problems[copy] is not { } problem)
            {
                continue;
            }

            await device.ReadAsync(copy * BlockSize, buffer.Memory);
            if (TornByCrash(buffer.Span, copy, newest))
            {
                log.Note($"superblock {SuperblockCopies.Name(copy)} was torn by a crash while being written (normal after a crash: " +
                         "the store opens from the other copy, and the next open or --repair rewrites it)");
            }
            else
            {
                log.Problem(StoreProblemKind.DamagedSuperblockCopy, problem);
            }
        }

        if (copies[0] is { } a && copies[1] is { } b)
        {
            Compare(a, b, log);
        }

        log.Note($"superblock: the store opens with {SuperblockCopies.Name(found.NewestBlock)}, generation {newest.Generation}; " +
                 $"last shutdown {(newest.Clean ? "clean" : "not clean (a crash; recovery replays the journal)")}");
        return found;
    }

    /// <summary>
    /// Whether an invalid copy is what a power cut during its write leaves: the fields (all in its
    /// first 512-byte sector) are those of the other copy but one generation apart, in this copy's
    /// block, the rest zero; only the checksum, in the last sector, fails. The checkpoint's fields
    /// and the incompatible features (a checkpoint sets and clears them: the first sets bit 2) may
    /// differ. A copy damaged any other way is a problem.
    /// </summary>
    private static bool TornByCrash(ReadOnlySpan<byte> block, long copy, Superblock newest)
    {
        Span<byte> expected = stackalloc byte[BlockSize];
        newest.Encode(expected);
        ulong generation = L.Generation.Read(block);
        return (generation == newest.Generation + 1 || generation + 1 == newest.Generation) && generation % 2 == (ulong)copy &&
               Same(block, expected, L.Magic.Offset, L.IncompatibleFeatures.Offset) &&
               Same(block, expected, L.ReadOnlyCompatibleFeatures.Offset, L.Generation.Offset) && Same(block, expected, L.BlockSize.Offset, L.Flags.Offset) &&
               Same(block, expected, L.DeviceBlocks.Offset, L.CheckpointStart.Offset) &&
               !block[Superblock.HeaderLength..L.Checksum.Offset].ContainsAnyExcept((byte)0);
    }

    private static bool Same(ReadOnlySpan<byte> block, ReadOnlySpan<byte> expected, int from, int to) =>
        block[from..to].SequenceEqual(expected[from..to]);

    private static void Compare(Superblock a, Superblock b, CheckLog log)
    {
        if (a.StoreId != b.StoreId)
        {
            log.Problem(StoreProblemKind.StaleSuperblockCopy, $"copy A belongs to store {a.StoreId}, copy B to store {b.StoreId}");
        }
        else if ((a.DeviceBlocks, a.JournalStart, a.JournalBlocks, a.DataStart) != (b.DeviceBlocks, b.JournalStart, b.JournalBlocks, b.DataStart))
        {
            log.Problem(StoreProblemKind.StaleSuperblockCopy,
                $"the copies describe different geometries: copy A {Geometry(a)}, copy B {Geometry(b)}");
        }

        foreach (var (copy, block) in new[] { (a, 0L), (b, 1L) })
        {
            if (copy.CopyBlock != block)
            {
                log.Problem(StoreProblemKind.StaleSuperblockCopy,
                    $"{SuperblockCopies.Name(block)} holds generation {copy.Generation}, which is written to block {copy.CopyBlock}");
            }
        }
    }

    private static string Geometry(Superblock s) =>
        $"{s.DeviceBlocks} blocks, journal {s.JournalStart}+{s.JournalBlocks}, data from {s.DataStart}";
}
