using SharpFuzz;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>What a harness made of an input: taken as valid, or refused the documented way.</summary>
internal enum Outcome
{
    Accepted,
    Refused,
}

/// <summary>A harness: bytes in, an outcome out; any exception it lets through is a bug.</summary>
internal delegate Outcome Harness(ReadOnlySpan<byte> input);

/// <summary>
/// Every coverage-guided fuzzing target by name: the name is the corpus folder
/// (Corpus/NAME), `make fuzz-coverage TARGET=NAME`'s argument, and what `replay` takes.
/// </summary>
internal static class FuzzTargets
{
    public static IReadOnlyDictionary<string, Harness> All { get; } = new Dictionary<string, Harness>(StringComparer.Ordinal)
    {
        ["nbd-handshake"] = NbdTargets.Handshake,
        ["nbd-request"] = NbdTargets.Requests,
        ["store-superblock"] = StoreTargets.Superblock,
        ["store-journal"] = StoreTargets.Journal,
        ["store-checkpoint"] = StoreTargets.Checkpoint,
        ["store-checkpoint-root"] = StoreTargets.CheckpointRoot,
        ["store-checkpoint-group"] = StoreTargets.CheckpointGroup,
        ["store-definition"] = StoreTargets.Definition,
        ["store-access"] = StoreTargets.Access,
        ["store-qos"] = StoreTargets.Qos,
    };

    /// <summary>
    /// The afl-fuzz loop: SharpFuzz runs one input after another in a child process it restarts
    /// when it dies, and an exception leaving the harness is reported to afl-fuzz as a crash.
    /// Out of process: in its in-process mode a run that dies another way (an allocation the
    /// machine cannot give, a timeout) takes the fork server with it and afl-fuzz stops.
    /// </summary>
    public static void RunUnderAfl(Harness harness) =>
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            harness(copy.GetBuffer().AsSpan(0, (int)copy.Length));
        });
}
