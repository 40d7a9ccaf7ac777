using System.Text;
using static BlockOverlay.Nbd.Tests.Fuzz.FuzzWire;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>What a fuzzed handshake ended in when it reached transmission.</summary>
internal sealed record Negotiated(string Export, ulong Size, ushort Flags, bool Structured, bool? MetaContext);

/// <summary>
/// Generates and runs one connection's handshake from its random source: client flags, a
/// sequence of options (LIST, INFO, GO, EXPORT_NAME, STARTTLS with TLS off, STRUCTURED_REPLY,
/// LIST/SET_META_CONTEXT, unknown ones), some with lying lengths, and an end: transmission,
/// ABORT, garbage, a truncated option or an abrupt close. Each option's reply is checked
/// against the one the specification allows for it.
/// </summary>
internal sealed class FuzzHandshake(Random random, FuzzWire wire, string export, FuzzTally tally)
{
    private const ulong ReplyMagic = 0x0003e889045565a9;
    private const uint Ack = 1, Server = 2, Info = 3, MetaContextReply = 4;
    private const uint ErrUnsup = 0x80000001, ErrInvalid = 0x80000003, ErrUnknown = 0x80000006, ErrTooBig = 0x80000009;
    private const uint OptExportName = 1, OptAbort = 2, OptList = 3, OptStartTls = 5, OptInfo = 6, OptGo = 7,
        OptStructured = 8, OptListMeta = 9, OptSetMeta = 10;

    private bool _structured;
    // Null once a refused SET_META_CONTEXT followed an accepted one: whether the server kept it is its choice.
    private bool? _metaContext = false;
    private bool _noZeroes;

    /// <summary>Runs the handshake; null when it ended without transmission (and the connection is done).</summary>
    public async Task<Negotiated?> RunAsync()
    {
        await wire.ReadAsync(18, "the greeting");
        uint flags = random.Next(10) switch
        {
            0 => (uint)random.Next(0, 4),
            1 => 1u << random.Next(2, 32), // an unknown flag: "the server MUST drop the TCP connection"
            _ => 3,
        };
        await wire.SendAsync(U32(flags));
        if ((flags & ~3u) != 0)
        {
            await wire.ExpectCloseAsync("unknown client flags");
            return null;
        }

        _noZeroes = (flags & 2) != 0;
        int steps = random.Next(0, 6);
        for (int i = 0; i < steps; i++)
        {
            await OptionStepAsync();
        }

        return await EndAsync();
    }

    private async Task OptionStepAsync()
    {
        tally.Inputs++;
        switch (random.Next(12))
        {
            case 0:
                await ExpectAsync(OptList, [], Ack, Server);
                break;
            case 1:
                await ExpectAsync(OptList, RandomBytes(1, 16), ErrInvalid);
                break;
            case 2:
                await ExpectAsync(OptInfo, GoData(export, RandomInfos()), Ack, Info);
                break;
            case 3:
                await ExpectAsync(random.Next(2) == 0 ? OptInfo : OptGo, GoData("no-such-" + random.Next(1000)), ErrUnknown);
                break;
            case 4:
                await ExpectAsync(random.Next(2) == 0 ? OptInfo : OptGo, LyingGoData(), ErrInvalid);
                break;
            case 5:
                // TLS is off: STARTTLS is an option this server does not have.
                await ExpectAnyOfAsync(OptStartTls, random.Next(3) == 0 ? RandomBytes(1, 8) : [], ErrUnsup, ErrInvalid);
                break;
            case 6:
                bool withData = random.Next(3) == 0;
                await ExpectAsync(OptStructured, withData ? RandomBytes(1, 8) : [], withData ? ErrInvalid : Ack);
                _structured |= !withData;
                break;
            case 7:
                await MetaContextAsync(random.Next(2) == 0 ? OptSetMeta : OptListMeta, MetaData(export, "base:allocation"));
                break;
            case 8:
                await ExpectAsync(random.Next(2) == 0 ? OptSetMeta : OptListMeta, LyingMetaData(), ErrInvalid);
                if (_metaContext == true)
                {
                    _metaContext = null;
                }

                break;
            case 9:
                await ExpectAsync((uint)random.Next(12, 1 << 16), RandomBytes(0, 64), ErrUnsup); // 11 is EXTENDED_HEADERS
                break;
            case 10:
                // Longer than the server's option limit: skipped as it arrives and refused.
                await ExpectAsync(OptList, new byte[64 * 1024 + random.Next(1, 4096)], ErrTooBig);
                break;
            default:
                await ExpectAsync(OptInfo, GoData(export), Ack, Info);
                break;
        }
    }

    private async Task MetaContextAsync(uint option, byte[] data)
    {
        if (!_structured)
        {
            await ExpectAsync(option, data, ErrInvalid);
            return;
        }

        await ExpectAsync(option, data, Ack, MetaContextReply);
        if (option == OptSetMeta)
        {
            _metaContext = true;
        }
    }

    private async Task<Negotiated?> EndAsync()
    {
        tally.Inputs++;
        switch (random.Next(10))
        {
            case 0:
                await ExpectAsync(OptAbort, [], Ack);
                return null;
            case 1:
                // Garbage where an option header belongs: a whole header's worth, or the server rightly waits for the rest.
                var garbage = RandomBytes(16, 40);
                garbage[0] ^= 0x49; // never the option magic
                await wire.TrySendAsync(garbage);
                await wire.ExpectCloseAsync("garbage in negotiation");
                return null;
            case 2:
                await wire.TrySendAsync(Option(OptInfo, GoData(export))[..random.Next(1, 20)]);
                return null; // truncated, then the client goes away
            case 3:
                return null; // abrupt close
            case 4:
                return await ExportNameAsync();
            default:
                return await GoAsync();
        }
    }

    private async Task<Negotiated> GoAsync()
    {
        var replies = await ExpectAsync(OptGo, GoData(export, RandomInfos()), Ack, Info);
        var info = replies.Find(r => r.Type == Info && r.Data.Length >= 12 && U16(r.Data, 0) == 0);
        if (info.Data is null)
        {
            throw new WrongReplyException("GO succeeded without NBD_INFO_EXPORT");
        }

        return new Negotiated(export, U64(info.Data, 2), U16(info.Data, 10), _structured, _metaContext);
    }

    private async Task<Negotiated> ExportNameAsync()
    {
        await wire.SendAsync(Option(OptExportName, Encoding.UTF8.GetBytes(export)));
        var reply = await wire.ReadAsync(_noZeroes ? 10 : 134, "the EXPORT_NAME reply");
        return new Negotiated(export, U64(reply, 0), U16(reply, 8), _structured, _metaContext);
    }

    private Task<List<(uint Type, byte[] Data)>> ExpectAsync(uint option, byte[] data, uint final, params uint[] informational) =>
        RoundTripAsync(option, data, [final], informational);

    private Task<List<(uint Type, byte[] Data)>> ExpectAnyOfAsync(uint option, byte[] data, params uint[] finals) =>
        RoundTripAsync(option, data, finals, []);

    /// <summary>Sends one option and checks its replies: magic, echoed option, allowed types, a final one.</summary>
    private async Task<List<(uint Type, byte[] Data)>> RoundTripAsync(uint option, byte[] data, uint[] finals, uint[] informational)
    {
        await wire.SendAsync(Option(option, data));
        var replies = new List<(uint Type, byte[] Data)>();
        while (true)
        {
            var header = await wire.ReadAsync(20, $"a reply to option {option}");
            uint type = U32(header, 12), length = U32(header, 16);
            if (U64(header, 0) != ReplyMagic || U32(header, 8) != option || length > 1 << 20)
            {
                throw new WrongReplyException($"option {option}: malformed reply header {Convert.ToHexString(header)}");
            }

            var body = length == 0 ? [] : await wire.ReadAsync((int)length, "option reply data");
            replies.Add((type, body));
            if (type == Ack || (type & 0x80000000) != 0)
            {
                if (!finals.Contains(type))
                {
                    throw new WrongReplyException($"option {option}: final reply 0x{type:x}, expected one of {string.Join(", ", finals.Select(f => $"0x{f:x}"))}");
                }

                return replies;
            }

            if (!informational.Contains(type))
            {
                throw new WrongReplyException($"option {option}: unexpected reply type 0x{type:x}");
            }
        }
    }

    private ushort[] RandomInfos() => Enumerable.Range(0, random.Next(0, 4)).Select(_ => (ushort)random.Next(0, 6)).ToArray();

    /// <summary>GO/INFO data whose name or info-count claims more bytes than the option holds.</summary>
    private byte[] LyingGoData()
    {
        var honest = GoData(export, RandomInfos());
        return random.Next(3) switch
        {
            0 => Concat(U32((uint)(honest.Length + random.Next(1, 1000))), honest[4..]),
            1 => Concat(String(export), U16((ushort)random.Next(100, 1000))),
            _ => honest[..random.Next(0, 4)],
        };
    }

    private byte[] LyingMetaData()
    {
        var honest = MetaData(export, "base:allocation");
        return random.Next(2) == 0
            ? Concat(honest[..^19], U32((uint)random.Next(16, 5000)), Encoding.ASCII.GetBytes("base:allocation"))
            : honest[..random.Next(0, honest.Length - 1)];
    }

    private byte[] RandomBytes(int min, int max)
    {
        var bytes = new byte[random.Next(min, max + 1)];
        random.NextBytes(bytes);
        return bytes;
    }
}
