namespace BlockOverlay.Nbd.Protocol;

/// <summary>The fixed part of an option request; <see cref="Length"/> bytes of data follow.</summary>
/// <param name="Option">The option code as sent (may be one this server does not know).</param>
/// <param name="Length">Length of the option data in bytes.</param>
public readonly record struct OptionHeader(uint Option, uint Length);

/// <summary>A transmission request header; a WRITE is followed by <see cref="Length"/> bytes.</summary>
public readonly record struct NbdRequest(CommandFlags Flags, ushort Type, ulong Cookie, ulong Offset, uint Length)
{
    public NbdCommand Command => (NbdCommand)Type;

    /// <summary>Only a WRITE carries a payload; the server cannot know the size of anything else's.</summary>
    public bool HasPayload => Command == NbdCommand.Write;

    public override string ToString() =>
        $"{CommandName(Type)} offset={Offset} length={Length} flags=0x{(ushort)Flags:x} cookie=0x{Cookie:x}";

    public static string CommandName(ushort type) =>
        Enum.IsDefined((NbdCommand)type) ? ((NbdCommand)type).ToString().ToUpperInvariant() : $"UNKNOWN({type})";
}

/// <summary>The export and information requests of NBD_OPT_INFO / NBD_OPT_GO.</summary>
public sealed record ExportInfoRequest(string ExportName, IReadOnlyList<InfoType> Requests);

/// <summary>The export and queries of NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT.</summary>
public sealed record MetaContextRequest(string ExportName, IReadOnlyList<string> Queries);

/// <summary>
/// The peer broke the protocol in a way that cannot be answered (bad magic, unknown
/// client flags, a stream that cannot be resynchronized): the connection ends.
/// </summary>
public sealed class NbdProtocolException : Exception
{
    public NbdProtocolException(string message) : base(message) { }
}

/// <summary>An option that is answered with an error reply; negotiation goes on.</summary>
public sealed class NbdOptionException : Exception
{
    public NbdOptionException(OptionReplyType reply, string message) : base(message) => Reply = reply;

    public OptionReplyType Reply { get; }
}
