using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;
using Microsoft.Win32.SafeHandles;

namespace BlockOverlay.Fuzz.Tests.Targets;

/// <summary>
/// The NBD targets: the input is what a client sends, run through the server's own connection
/// code (<see cref="NbdConnection"/>: handshake, option parsing, request parsing, validation,
/// the requests themselves and their replies) over in-memory streams.
/// </summary>
/// <remarks>
/// The documented way out for a malformed input is the protocol's error path: a rejected
/// option or request is answered, a violation drops the connection (<see cref="NbdProtocolException"/>,
/// logged as a warning). The connection catches everything else and logs it at Error as a bug
/// (<c>ConnectionCrashed</c>, a request that "failed unexpectedly"): the oracle is that
/// nothing is ever logged at Error. Hangs are the fuzzer's timeout.
/// </remarks>
internal static class NbdTargets
{
    /// <summary>Size of both exports: small, so that no valid READ asks for much memory.</summary>
    public const long ExportSize = 1 << 20;

    private static readonly NbdServerOptions Options = new();
    private static readonly Lazy<FileExport> ReadOnlyExport = new(OpenReadOnlyExport);

    /// <summary>Input: the client's bytes from its handshake flags on.</summary>
    public static Outcome Handshake(ReadOnlySpan<byte> input) => Serve(input.ToArray());

    /// <summary>
    /// Input: one byte choosing the handshake (bit 0: structured replies, bit 1: the
    /// base:allocation context, bit 2: the read-only export), then the transmission phase.
    /// </summary>
    public static Outcome Requests(ReadOnlySpan<byte> input)
    {
        byte shape = input.IsEmpty ? (byte)0 : input[0];
        var rest = input.IsEmpty ? ReadOnlySpan<byte>.Empty : input[1..];
        byte[] prefix = HandshakeFor(shape).ToArray();
        byte[] stream = new byte[prefix.Length + rest.Length];
        prefix.CopyTo(stream, 0);
        rest.CopyTo(stream.AsSpan(prefix.Length));
        return Serve(stream);
    }

    /// <summary>The client's handshake for a shape byte of <see cref="Requests"/>, ending with GO.</summary>
    public static ClientBytes HandshakeFor(byte shape)
    {
        string export = (shape & 4) != 0 ? "ro" : "disk";
        var client = new ClientBytes().Flags(ClientFlags.FixedNewstyle | ClientFlags.NoZeroes);
        if ((shape & 1) != 0)
        {
            client.Option(NbdOption.StructuredReply, []);
            if ((shape & 2) != 0)
            {
                client.MetaContext(NbdOption.SetMetaContext, export, "base:allocation");
            }
        }

        return client.Choose(NbdOption.Go, export);
    }

    private static Outcome Serve(byte[] clientBytes)
    {
        var log = new BugLog();
        var counters = new ServerCounters();
        var catalog = new ExportCatalog();
        catalog.Add("disk", new MemoryExport(ExportSize));
        catalog.Add("ro", ReadOnlyExport.Value);
        using var input = new MemoryStream(clientBytes, writable: false);
        NbdConnection.RunAsync(input, Stream.Null, PeerIdentity.Anonymous, catalog, Options, log, counters,
            new RequestBuffers(counters), sharedBudget: null, connectionId: 1, CancellationToken.None).GetAwaiter().GetResult();
        log.ThrowIfBug();
        return log.ProtocolViolations > 0 ? Outcome.Refused : Outcome.Accepted;
    }

    /// <summary>A read-only file export of <see cref="ExportSize"/> bytes; the file is unlinked at once, the handle keeps it.</summary>
    private static FileExport OpenReadOnlyExport()
    {
        string path = Path.Combine(Path.GetTempPath(), $"blockoverlay-fuzz-{Environment.ProcessId}.img");
        using (SafeFileHandle file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.SetLength(file, ExportSize);
        }

        try
        {
            return FileExport.Open(path, readOnly: true);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
