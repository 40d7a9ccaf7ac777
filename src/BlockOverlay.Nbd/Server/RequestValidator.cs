using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>A request the server refuses before any I/O: the error to answer and why.</summary>
internal readonly record struct Rejection(NbdError Error, string Reason);

/// <summary>
/// Checks every request before any I/O (command, flags, read-only, lengths, range) and
/// picks the error by command, as the protocol asks. A pure function: the same request
/// on the same export always gets the same answer.
/// </summary>
internal static class RequestValidator
{
    public static Rejection? Validate(in NbdRequest request, NegotiatedExport export, BlockSizes sizes)
    {
        var flags = export.Flags;
        var command = request.Command;

        // "The server SHOULD return EINVAL if it receives an unknown command."
        if (!Enum.IsDefined(command) || command == NbdCommand.Disconnect)
        {
            return command == NbdCommand.Disconnect ? null : new(NbdError.InvalidArgument, "unknown command");
        }

        // "it SHOULD return EPERM if it receives a write or trim request on a read-only export"
        if (IsWriteType(command) && flags.HasFlag(TransmissionFlags.ReadOnly))
        {
            return new(NbdError.NotPermitted, "the export is read-only");
        }

        if (!IsAdvertised(command, flags, export.MetaContexts.Count > 0))
        {
            return new(NbdError.InvalidArgument, "command not offered for this export");
        }

        // "EINVAL if it receives an unknown command flag ... or a flag not explicitly
        // documented as applicable to the given request."
        var unexpected = request.Flags & ~AllowedFlags(command, flags);
        if (unexpected != 0)
        {
            return new(NbdError.InvalidArgument, $"flags 0x{(ushort)unexpected:x} not valid for this command");
        }

        if (command == NbdCommand.Flush)
        {
            // "For a flush request, length and offset are reserved, and MUST be set to all-zero."
            return request.Offset != 0 || request.Length != 0
                ? new(NbdError.InvalidArgument, "FLUSH must have zero offset and length")
                : null;
        }

        if (request.Length == 0)
        {
            return new(NbdError.InvalidArgument, "zero-length request");
        }

        // Payloads are bounded before any buffer is sized by them. Not EOVERFLOW: "The server
        // SHOULD NOT return NBD_EOVERFLOW except as documented in response to NBD_CMD_READ when
        // NBD_CMD_FLAG_DF is supported, or when a command without payload requests a length
        // larger than an advertised maximum payload length."
        if (command is NbdCommand.Read or NbdCommand.Write && request.Length > sizes.MaximumPayload)
        {
            return new(NbdError.InvalidArgument, $"length exceeds the maximum payload of {sizes.MaximumPayload} bytes");
        }

        ulong size = (ulong)export.Export.Size;
        if (request.Offset > size || request.Length > size - request.Offset)
        {
            // "The server SHOULD return ENOSPC if it receives a write request including one or
            // more sectors beyond the size of the device"; everything else gets EINVAL.
            var error = command is NbdCommand.Write or NbdCommand.WriteZeroes ? NbdError.NoSpace : NbdError.InvalidArgument;
            return new(error, $"range ends beyond the export size of {size} bytes");
        }

        return null;
    }

    private static bool IsWriteType(NbdCommand command) =>
        command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;

    private static bool IsAdvertised(NbdCommand command, TransmissionFlags flags, bool anyMetaContext) => command switch
    {
        NbdCommand.Flush => flags.HasFlag(TransmissionFlags.SendFlush),
        NbdCommand.Trim => flags.HasFlag(TransmissionFlags.SendTrim),
        NbdCommand.WriteZeroes => flags.HasFlag(TransmissionFlags.SendWriteZeroes),
        NbdCommand.Cache => flags.HasFlag(TransmissionFlags.SendCache),
        // "A client MUST NOT use NBD_CMD_BLOCK_STATUS unless it selected a nonzero number of
        // metadata contexts ... Servers SHOULD reply to clients doing so anyway with EINVAL."
        NbdCommand.BlockStatus => anyMetaContext,
        _ => true,
    };

    private static CommandFlags AllowedFlags(NbdCommand command, TransmissionFlags flags)
    {
        // FUA "is valid for all commands, provided NBD_FLAG_SEND_FUA has been negotiated".
        var allowed = flags.HasFlag(TransmissionFlags.SendFua) ? CommandFlags.Fua : CommandFlags.None;
        switch (command)
        {
            case NbdCommand.Read when flags.HasFlag(TransmissionFlags.SendDf):
                allowed |= CommandFlags.DontFragment;
                break;
            case NbdCommand.WriteZeroes:
                allowed |= CommandFlags.NoHole;
                if (flags.HasFlag(TransmissionFlags.SendFastZero))
                {
                    allowed |= CommandFlags.FastZero;
                }

                break;
            case NbdCommand.BlockStatus:
                allowed |= CommandFlags.RequestOne;
                break;
        }

        return allowed;
    }
}
