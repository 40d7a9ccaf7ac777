using BlockOverlay.Engine.Exports;
using BlockOverlay.Nbd.Protocol;
using BlockOverlay.Nbd.Server;

namespace BlockOverlay.Nbd.Tests.Server;

public class RequestValidatorTests
{
    private const long Size = 1 << 20;
    private static readonly BlockSizes Sizes = BlockSizes.Default;

    private static NegotiatedExport Writable(bool structured = true, bool baseAllocation = true) =>
        new("d", new MemoryExport(Size), structured, baseAllocation ? [MetaContexts.BaseAllocation] : []);

    private static NbdError? Validate(NbdCommand command, CommandFlags flags, ulong offset, uint length, NegotiatedExport? export = null) =>
        RequestValidator.Validate(new NbdRequest(flags, (ushort)command, 1, offset, length), export ?? Writable(), Sizes)?.Error;

    [Test]
    public void Requests_within_range_with_documented_flags_pass()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Validate(NbdCommand.Read, CommandFlags.DontFragment | CommandFlags.Fua, 0, 4096), Is.Null);
            Assert.That(Validate(NbdCommand.Write, CommandFlags.Fua, Size - 1, 1), Is.Null);
            Assert.That(Validate(NbdCommand.Flush, CommandFlags.None, 0, 0), Is.Null);
            Assert.That(Validate(NbdCommand.Trim, CommandFlags.Fua, 0, (uint)Size), Is.Null);
            Assert.That(Validate(NbdCommand.WriteZeroes, CommandFlags.NoHole | CommandFlags.FastZero | CommandFlags.Fua, 512, 512), Is.Null);
            Assert.That(Validate(NbdCommand.Cache, CommandFlags.None, 0, 1), Is.Null);
            Assert.That(Validate(NbdCommand.BlockStatus, CommandFlags.RequestOne, 0, (uint)Size), Is.Null);
        });
    }

    [Test]
    public void Out_of_range_writes_get_enospc_and_everything_else_einval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Validate(NbdCommand.Write, 0, Size - 1, 2), Is.EqualTo(NbdError.NoSpace));
            Assert.That(Validate(NbdCommand.WriteZeroes, 0, Size, 1), Is.EqualTo(NbdError.NoSpace));
            Assert.That(Validate(NbdCommand.Read, 0, Size, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Trim, 0, Size - 1, 2), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Cache, 0, ulong.MaxValue, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.BlockStatus, 0, ulong.MaxValue - 1, 4), Is.EqualTo(NbdError.InvalidArgument),
                "offset + length overflowing 64 bits is out of range, not wrapped around");
        });
    }

    [Test]
    public void Unknown_commands_and_flags_get_einval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(RequestValidator.Validate(new NbdRequest(0, 99, 1, 0, 1), Writable(), Sizes)?.Error, Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Write, (CommandFlags)0x8000, 0, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Write, CommandFlags.NoHole, 0, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Read, CommandFlags.RequestOne, 0, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Trim, CommandFlags.FastZero, 0, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Read, CommandFlags.DontFragment, 0, 1, Writable(structured: false)),
                Is.EqualTo(NbdError.InvalidArgument), "DF is only valid when structured replies were negotiated");
        });
    }

    [Test]
    public void Flush_with_offset_or_length_and_zero_length_requests_get_einval()
    {
        Assert.Multiple(() =>
        {
            Assert.That(Validate(NbdCommand.Flush, 0, 1, 0), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Flush, 0, 0, 1), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Read, 0, 0, 0), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Write, 0, 0, 0), Is.EqualTo(NbdError.InvalidArgument));
        });
    }

    [Test]
    public void Payloads_over_the_maximum_get_einval_not_eoverflow()
    {
        uint tooBig = Sizes.MaximumPayload + 1;
        var huge = new NegotiatedExport("d", new MemoryExport(1L << 40), true, [MetaContexts.BaseAllocation]);
        Assert.Multiple(() =>
        {
            // "The server SHOULD NOT return NBD_EOVERFLOW except as documented in response to
            // NBD_CMD_READ when NBD_CMD_FLAG_DF is supported, or when a command without payload
            // requests a length larger than an advertised maximum payload length."
            Assert.That(Validate(NbdCommand.Write, 0, 0, tooBig, huge), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Read, 0, 0, tooBig, huge), Is.EqualTo(NbdError.InvalidArgument));
            Assert.That(Validate(NbdCommand.Trim, 0, 0, uint.MaxValue, huge), Is.Null, "no payload, no limit");
        });
    }

    [Test]
    public void Block_status_without_a_selected_context_gets_einval()
    {
        Assert.That(Validate(NbdCommand.BlockStatus, 0, 0, 1, Writable(baseAllocation: false)), Is.EqualTo(NbdError.InvalidArgument));
    }

    [Test]
    public async Task Write_type_commands_on_a_read_only_export_get_eperm()
    {
        string path = Path.GetTempFileName();
        try
        {
            await File.WriteAllBytesAsync(path, new byte[4096]);
            await using var export = FileExport.Open(path, readOnly: true);
            var readOnly = new NegotiatedExport("ro", export, true, [MetaContexts.BaseAllocation]);
            Assert.Multiple(() =>
            {
                Assert.That(Validate(NbdCommand.Write, 0, 0, 1, readOnly), Is.EqualTo(NbdError.NotPermitted));
                Assert.That(Validate(NbdCommand.Trim, 0, 0, 1, readOnly), Is.EqualTo(NbdError.NotPermitted));
                Assert.That(Validate(NbdCommand.WriteZeroes, 0, 0, 1, readOnly), Is.EqualTo(NbdError.NotPermitted));
                Assert.That(Validate(NbdCommand.Read, 0, 0, 1, readOnly), Is.Null);
                Assert.That(Validate(NbdCommand.Flush, 0, 0, 0, readOnly), Is.Null);
                Assert.That(readOnly.Flags.HasFlag(TransmissionFlags.ReadOnly), Is.True);
                Assert.That(readOnly.Flags & (TransmissionFlags.SendTrim | TransmissionFlags.SendWriteZeroes | TransmissionFlags.SendFua),
                    Is.EqualTo(TransmissionFlags.None));
            });
        }
        finally
        {
            File.Delete(path);
        }
    }
}
