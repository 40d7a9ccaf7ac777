using static BlockOverlay.Nbd.Tests.Fuzz.FuzzWire;
using static BlockOverlay.Nbd.Tests.Protocol.WireBytes;

namespace BlockOverlay.Nbd.Tests.Fuzz;

/// <summary>
/// Generates and runs one connection's transmission phase: valid requests checked against
/// the export's model, requests with exactly one fault each (unknown command, reserved flag,
/// zero or lying length, out of range, FLUSH with an offset, BLOCK_STATUS without a context)
/// checked against the error the specification asks for, batches of requests sent together
/// before any reply is read (pipelined), and an end: DISC, a bad magic, a truncated header, a
/// write whose payload never comes, or an abrupt close mid-request.
/// </summary>
internal sealed class FuzzTransmission(Random random, FuzzWire wire, Negotiated negotiated, ExportModel model, FuzzTally tally)
{
    private const uint EPERM = 1, EINVAL = 22, ENOSPC = 28, ENOTSUP = 95;
    private const ushort Read = 0, Write = 1, Disc = 2, Flush = 3, Trim = 4, Cache = 5, Zeroes = 6, BlockStatus = 7;
    private const ushort Fua = 1, NoHole = 2, DontFragment = 4, FastZero = 16;
    private const int MaxIo = 8192;

    private bool ReadOnly => Has(2);

    private bool Has(int transmissionFlag) => (negotiated.Flags & transmissionFlag) != 0;

    public async Task RunAsync()
    {
        if (negotiated.Size != (ulong)model.Size)
        {
            throw new WrongReplyException($"export size {negotiated.Size}, the export has {model.Size}");
        }

        int steps = random.Next(1, 40);
        for (int i = 0; i < steps; i++)
        {
            tally.Inputs++;
            if (random.Next(6) == 0)
            {
                await PipelinedAsync();
            }
            else if (random.Next(4) == 0)
            {
                await FaultyAsync();
            }
            else
            {
                await ValidAsync();
            }
        }

        tally.Inputs++;
        await EndAsync();
    }

    private async Task ValidAsync()
    {
        var (offset, length) = InRange();
        switch (random.Next(8))
        {
            case 0 or 1 or 2:
                var data = RandomBytes(length);
                ushort flags = Has(8) && random.Next(2) == 0 ? Fua : (ushort)0;
                var (error, _) = await RequestAsync(flags, Write, offset, (uint)length, data);
                Expect(error, ReadOnly ? EPERM : 0, "WRITE");
                if (error == 0)
                {
                    model.Write(offset, data);
                }

                break;
            case 3 or 4:
                ushort readFlags = negotiated.Structured && Has(128) && random.Next(2) == 0 ? DontFragment : (ushort)0;
                var (readError, read) = await RequestAsync(readFlags, Read, offset, (uint)length);
                Expect(readError, 0, "READ");
                int mismatch = model.FirstMismatch(offset, read!);
                if (mismatch >= 0)
                {
                    throw new WrongReplyException($"READ at {offset}+{length}: byte {mismatch} is not what the server acknowledged writing");
                }

                break;
            case 5 when Has(64):
                ushort zeroFlags = (ushort)((random.Next(2) == 0 ? NoHole : 0) | (Has(2048) && random.Next(2) == 0 ? FastZero : 0));
                var (zeroError, _) = await RequestAsync(zeroFlags, Zeroes, offset, (uint)length);
                // A fast zero may be refused with ENOTSUP: the export then did nothing.
                if (!(ReadOnly ? zeroError == EPERM : zeroError == 0 || ((zeroFlags & FastZero) != 0 && zeroError == ENOTSUP)))
                {
                    throw new WrongReplyException($"WRITE_ZEROES flags 0x{zeroFlags:x}: error {zeroError}");
                }

                if (zeroError == 0)
                {
                    model.Zero(offset, length);
                }

                break;
            case 6 when Has(32):
                var (trimError, _) = await RequestAsync(0, Trim, offset, (uint)length);
                Expect(trimError, ReadOnly ? EPERM : 0, "TRIM");
                if (trimError == 0)
                {
                    model.Forget(offset, length); // trimmed bytes may read as anything
                }

                break;
            case 7 when negotiated.Structured && negotiated.MetaContext == true:
                Expect((await RequestAsync(0, BlockStatus, offset, (uint)length)).Error, 0, "BLOCK_STATUS");
                break;
            default:
                if (Has(4))
                {
                    Expect((await RequestAsync(0, Flush, 0, 0)).Error, 0, "FLUSH");
                }
                else if (Has(1024))
                {
                    Expect((await RequestAsync(0, Cache, offset, (uint)length)).Error, 0, "CACHE");
                }

                break;
        }
    }

    /// <summary>A request with one fault; read-only exports may answer EPERM first for write types.</summary>
    private async Task FaultyAsync()
    {
        var (offset, length) = InRange();
        ulong size = (ulong)model.Size;
        switch (random.Next(7))
        {
            case 0:
                ushort command = (ushort)random.Next(8, 1 << 16);
                Expect((await RequestAsync(0, command, offset, (uint)length)).Error, EINVAL, $"unknown command {command}");
                break;
            case 1:
                ushort reserved = (ushort)(1 << random.Next(5, 16));
                Expect((await RequestAsync(reserved, Read, offset, (uint)length)).Error, EINVAL, $"READ with reserved flag 0x{reserved:x}");
                break;
            case 2:
                ushort zeroLength = random.Next(2) == 0 ? Read : Write;
                ExpectOneOf((await RequestAsync(0, zeroLength, offset, 0)).Error, "zero-length request", EINVAL, WriteTypeRefusal(zeroLength));
                break;
            case 3:
                // Past the end, including offsets whose sum with the length overflows 64 bits.
                ulong past = random.Next(2) == 0 ? size - (ulong)length + (ulong)random.Next(1, length + 1) : ulong.MaxValue - (ulong)random.Next(0, MaxIo);
                bool write = random.Next(2) == 0;
                var payload = write ? RandomBytes(length) : null;
                ExpectOneOf((await RequestAsync(0, write ? Write : Read, past, (uint)length, payload)).Error,
                    $"{(write ? "WRITE" : "READ")} at {past}+{length}", write ? ENOSPC : EINVAL, WriteTypeRefusal(write ? Write : Read));
                break;
            case 4:
                uint huge = FuzzReplies.MaxPayload + (uint)random.Next(1, int.MaxValue);
                Expect((await RequestAsync(0, Read, 0, huge)).Error, EINVAL, $"READ of {huge} bytes");
                break;
            case 5 when Has(4):
                Expect((await RequestAsync(0, Flush, offset, (uint)length)).Error, EINVAL, "FLUSH with offset and length");
                break;
            default:
                if (negotiated.MetaContext == false)
                {
                    Expect((await RequestAsync(0, BlockStatus, offset, (uint)length)).Error, EINVAL, "BLOCK_STATUS without a meta context");
                }

                break;
        }
    }

    /// <summary>
    /// 2 to 16 requests in one send, before any reply is read: writes, reads and faulty ones, each
    /// on its own slice of the export (the server runs them concurrently, so two on one range have
    /// no order). Replies may come in any order; each is matched by its cookie and checked.
    /// </summary>
    private async Task PipelinedAsync()
    {
        int count = random.Next(2, 17);
        int slot = model.Size / count;
        var pending = new Dictionary<ulong, PendingReply>();
        var checks = new List<(ulong Cookie, string What, uint[] Allowed, ulong Offset, byte[]? Written)>();
        var batch = new List<byte>();
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(1, Math.Min(MaxIo, slot) + 1);
            ulong offset = (ulong)(i * slot + random.Next(0, slot - length + 1));
            ulong cookie = Cookie();
            while (pending.ContainsKey(cookie))
            {
                cookie = Cookie();
            }

            switch (random.Next(4))
            {
                case 0:
                    var data = RandomBytes(length);
                    batch.AddRange(Concat(Request(0, Write, cookie, offset, (uint)length), data));
                    pending[cookie] = new PendingReply(0, offset);
                    checks.Add((cookie, $"pipelined WRITE at {offset}+{length}", [ReadOnly ? EPERM : 0], offset, data));
                    break;
                case 1:
                    batch.AddRange(Request(0, Read, cookie, offset, (uint)length));
                    pending[cookie] = new PendingReply((uint)length, offset);
                    checks.Add((cookie, $"pipelined READ at {offset}+{length}", [0], offset, null));
                    break;
                case 2:
                    ushort command = (ushort)random.Next(8, 1 << 16);
                    batch.AddRange(Request(0, command, cookie, offset, (uint)length));
                    pending[cookie] = new PendingReply(0, offset);
                    checks.Add((cookie, $"pipelined unknown command {command}", [EINVAL], offset, null));
                    break;
                default:
                    ushort reserved = (ushort)(1 << random.Next(5, 16));
                    batch.AddRange(Request(reserved, Read, cookie, offset, (uint)length));
                    pending[cookie] = new PendingReply(0, offset);
                    checks.Add((cookie, $"pipelined READ with reserved flag 0x{reserved:x}", [EINVAL], offset, null));
                    break;
            }
        }

        tally.Inputs += count;
        try
        {
            await wire.SendAsync([.. batch]);
            await FuzzReplies.ReadPipelinedAsync(wire, negotiated.Structured, pending);
        }
        catch (HangException)
        {
            // The batch's writes may or may not have happened (whether answered or not: the
            // answers are checked only when all came): the model must not claim either.
            foreach (var (_, _, _, offset, written) in checks.Where(c => c.Written is not null))
            {
                ForgetIfWritable(offset, written!.Length);
            }

            throw;
        }
        foreach (var (cookie, what, allowed, offset, written) in checks)
        {
            var reply = pending[cookie];
            ExpectOneOf(reply.Error, what, allowed);
            if (reply.Data is { } read && model.FirstMismatch(offset, read) is var mismatch and >= 0)
            {
                throw new WrongReplyException($"{what}: byte {mismatch} is not what the server acknowledged writing");
            }

            if (written is not null && reply.Error == 0)
            {
                model.Write(offset, written);
            }
        }
    }

    private uint WriteTypeRefusal(ushort command) => ReadOnly && command is Write or Trim or Zeroes ? EPERM : EINVAL;

    private async Task EndAsync()
    {
        var (offset, length) = InRange();
        switch (random.Next(6))
        {
            case 0:
                await wire.SendAsync(Request(0, Disc, Cookie(), 0, 0));
                await wire.ExpectCloseAsync("DISC");
                break;
            case 1:
                var garbage = RandomBytes(28);
                garbage[0] ^= 0x25; // never the request magic
                await wire.TrySendAsync(garbage);
                await wire.ExpectCloseAsync("a request with a bad magic");
                break;
            case 2:
                await wire.TrySendAsync(Request(0, Read, Cookie(), offset, (uint)length)[..random.Next(1, 28)]);
                break; // truncated header, then the client goes
            case 3:
                // A lying length: the payload promised never comes whole.
                uint lying = (uint)length + (uint)random.Next(1, MaxIo);
                await wire.TrySendAsync(Concat(Request(0, Write, Cookie(), offset, lying), RandomBytes(random.Next(0, length))));
                ForgetIfWritable(offset, (int)Math.Min(lying, (ulong)model.Size - offset));
                break;
            case 4:
                // A valid write, and the client leaves before its reply: it may or may not have happened.
                await wire.TrySendAsync(Concat(Request(0, Write, Cookie(), offset, (uint)length), RandomBytes(length)));
                ForgetIfWritable(offset, length);
                break;
            default:
                break; // abrupt close between requests
        }
    }

    private void ForgetIfWritable(ulong offset, int length)
    {
        if (!ReadOnly)
        {
            model.Forget(offset, length);
        }
    }

    private async Task<(uint Error, byte[]? Data)> RequestAsync(ushort flags, ushort command, ulong offset, uint length, byte[]? payload = null)
    {
        ulong cookie = Cookie();
        await wire.SendAsync(payload is null ? Request(flags, command, cookie, offset, length) : Concat(Request(flags, command, cookie, offset, length), payload));
        try
        {
            return negotiated.Structured
                ? await FuzzReplies.ReadStructuredAsync(wire, cookie, command == Read ? length : 0, offset)
                : await FuzzReplies.ReadSimpleAsync(wire, cookie, command == Read ? length : 0);
        }
        catch (HangException e)
        {
            // Unanswered, a change may or may not have happened: the model must not claim either.
            if (command is Write or Zeroes or Trim && offset < (ulong)model.Size)
            {
                ForgetIfWritable(offset, (int)Math.Min(length, (ulong)model.Size - offset));
            }

            throw new HangException($"command {command} flags 0x{flags:x} at {offset}+{length}: {e.Message}");
        }
    }

    private static void Expect(uint error, uint expected, string what)
    {
        if (error != expected)
        {
            throw new WrongReplyException($"{what}: error {error}, the specification asks for {expected}");
        }
    }

    private static void ExpectOneOf(uint error, string what, params uint[] allowed)
    {
        if (!allowed.Contains(error))
        {
            throw new WrongReplyException($"{what}: error {error}, the specification allows {string.Join(" or ", allowed)}");
        }
    }

    private (ulong Offset, int Length) InRange()
    {
        int length = random.Next(1, Math.Min(MaxIo, model.Size) + 1);
        return ((ulong)random.Next(0, model.Size - length + 1), length);
    }

    private ulong Cookie() => (ulong)random.NextInt64();

    private byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
