using System.IO.Pipelines;
using System.Security.Authentication;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The handshake phase of one connection (fixed newstyle): the greeting, the client's
/// flags, then options until the client picks an export (EXPORT_NAME or GO), aborts,
/// or breaks the protocol.
/// </summary>
/// <remarks>
/// Every option but EXPORT_NAME is answered, errors included, and negotiation goes on:
/// "the server MUST ... simply error inbound options until the client gets the hint".
/// Option data is bounded by <see cref="NbdServerOptions.MaxOptionLength"/>; longer data
/// is skipped unread and answered with ERR_TOO_BIG. The connection attaches to the export it
/// chooses before the reply that accepts the choice is written (<see cref="Attachment"/>):
/// an export removed meanwhile is refused like an unknown one, never accepted and then cut.
/// <para>TLS (<see cref="NbdServerOptions.Tls"/>): STARTTLS is answered ACK and the same
/// connection goes on inside TLS (<see cref="ConnectionStream"/>), with nothing chosen before
/// it kept, as the spec says; a second STARTTLS, or one with data, is ERR_INVALID. With
/// <see cref="TlsMode.Require"/> every other option before it is skipped unread and answered
/// ERR_TLS_REQD, and EXPORT_NAME, which has no error reply, ends the connection.</para>
/// <para>An export the peer may not see (<see cref="IRestrictedExport"/>, judged on
/// <see cref="ConnectionPeer.Identity"/>) is never listed, described or chosen, and every answer
/// about it is the answer for a name that does not exist.</para>
/// </remarks>
internal sealed class OptionNegotiation(
    MessageReader reader,
    PipeWriter writer,
    ConnectionStream stream,
    ConnectionPeer peer,
    ExportCatalog catalog,
    NbdServerOptions options,
    ILogger logger,
    LogThrottle logThrottle,
    long connectionId)
{
    private bool _noZeroes;
    private bool _structuredReplies;
    private bool _tlsStarted;

    // The contexts chosen by SET_META_CONTEXT, valid only for the export they were chosen on.
    private string? _metaExport;
    private IReadOnlyList<MetaContext> _metaContexts = [];

    /// <summary>
    /// The connection's hold on the chosen export, once it chose one; its owner (the
    /// connection) disposes it, also when negotiation fails after the choice.
    /// </summary>
    public ExportAttachment? Attachment { get; private set; }

    /// <summary>The chosen export, or null when the client left without choosing one.</summary>
    public async Task<NegotiatedExport?> RunAsync(CancellationToken cancel)
    {
        NbdEncoder.WriteGreeting(writer, HandshakeFlags.FixedNewstyle | HandshakeFlags.NoZeroes);
        await writer.FlushAsync(cancel);

        var (clientFlags, closed) = await reader.ReadAsync<ClientFlags>(NbdParser.TryReadClientFlags, cancel);
        if (closed)
        {
            return null;
        }

        _noZeroes = clientFlags.HasFlag(ClientFlags.NoZeroes);
        if (options.Tls?.Mode == TlsMode.Require && !clientFlags.HasFlag(ClientFlags.FixedNewstyle))
        {
            // TLS needs fixed newstyle: such a client could never start it.
            logger.ConnectionEvent(connectionId, "closed: TLS is required and the client did not reply with fixed newstyle");
            return null;
        }

        while (true)
        {
            var (header, ended) = await reader.ReadAsync<OptionHeader>(NbdParser.TryReadOptionHeader, cancel);
            if (ended)
            {
                logger.ConnectionEvent(connectionId, "client closed the connection during negotiation");
                return null;
            }

            if (TlsRequiredBefore((NbdOption)header.Option))
            {
                await reader.SkipAsync(header.Length, cancel);
                Reject(header.Option, OptionReplyType.ErrTlsRequired, "this server requires TLS: send NBD_OPT_STARTTLS first");
                await writer.FlushAsync(cancel);
                continue;
            }

            if (header.Length > options.MaxOptionLength)
            {
                await reader.SkipAsync(header.Length, cancel);
                Reject(header.Option, OptionReplyType.ErrTooBig,
                    $"option data of {header.Length} bytes exceeds this server's limit of {options.MaxOptionLength}");
                await writer.FlushAsync(cancel);
                continue;
            }

            byte[] data = new byte[header.Length];
            await reader.ReadExactlyAsync(data, cancel);
            if ((NbdOption)header.Option == NbdOption.StartTls && options.Tls is { } tls)
            {
                await StartTlsAsync(header.Option, data, tls, cancel);
                continue;
            }

            NegotiatedExport? chosen;
            try
            {
                chosen = HandleOption(header.Option, data, out bool abort);
                if (abort)
                {
                    await TryFlushAsync(cancel);
                    return null;
                }
            }
            catch (NbdOptionException e)
            {
                Reject(header.Option, e.Reply, e.Message);
                chosen = null;
            }

            await writer.FlushAsync(cancel);
            if (chosen is not null)
            {
                return chosen;
            }
        }
    }

    /// <summary>Whether <paramref name="option"/> must wait for TLS: with TLS required, all but STARTTLS and ABORT until it is up.</summary>
    private bool TlsRequiredBefore(NbdOption option)
    {
        if (options.Tls?.Mode != TlsMode.Require || _tlsStarted || option is NbdOption.StartTls or NbdOption.Abort)
        {
            return false;
        }

        return option == NbdOption.ExportName
            ? throw new NbdProtocolException("EXPORT_NAME before STARTTLS, and this server requires TLS")
            : true;
    }

    /// <summary>
    /// Answers STARTTLS and, when it is accepted, runs the TLS handshake and forgets what was
    /// negotiated in the clear ("the server MUST NOT preserve any negotiation state").
    /// </summary>
    private async Task StartTlsAsync(uint option, byte[] data, NbdTls tls, CancellationToken cancel)
    {
        string? refusal = _tlsStarted ? "TLS is already started on this connection"
            : data.Length != 0 ? $"STARTTLS takes no data, {data.Length} bytes were sent"
            : null;
        if (refusal is not null)
        {
            Reject(option, OptionReplyType.ErrInvalid, refusal);
            await writer.FlushAsync(cancel);
            return;
        }

        NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
        await writer.FlushAsync(cancel);
        if (reader.HoldsUnreadBytes())
        {
            // Bytes sent before our ACK could be read neither as options nor as TLS.
            throw new NbdProtocolException("the client sent more after STARTTLS without waiting for its reply");
        }

        try
        {
            peer.CertificateSubject = await stream.StartTlsAsync(tls, cancel);
        }
        catch (AuthenticationException e)
        {
            throw new NbdProtocolException($"the TLS handshake failed: {e.Message}");
        }

        _tlsStarted = true;
        _structuredReplies = false;
        _metaExport = null;
        _metaContexts = [];
        logger.TlsStarted(connectionId, peer.CertificateSubject ?? "none asked for");
    }

    private NegotiatedExport? HandleOption(uint option, byte[] data, out bool abort)
    {
        abort = false;
        switch ((NbdOption)option)
        {
            case NbdOption.ExportName:
                return ChooseByExportName(data);
            case NbdOption.Abort:
                // "The server MUST reply with NBD_REP_ACK"; the client may already be gone.
                NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
                abort = true;
                return null;
            case NbdOption.List:
                RequireNoData(data, "LIST");
                foreach (var (name, export) in catalog.VisibleTo(peer.Identity))
                {
                    NbdEncoder.WriteServerReply(writer, option, name, export.Description);
                }

                NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
                return null;
            case NbdOption.StartTls:
                throw new NbdOptionException(OptionReplyType.ErrUnsupported, "this server does not offer TLS");
            case NbdOption.Info:
            case NbdOption.Go:
                return DescribeExport(option, NbdParser.ParseExportInfoRequest(data));
            case NbdOption.StructuredReply:
                RequireNoData(data, "STRUCTURED_REPLY");
                _structuredReplies = true;
                NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
                return null;
            case NbdOption.ListMetaContext:
            case NbdOption.SetMetaContext:
                HandleMetaContext(option, NbdParser.ParseMetaContextRequest(data));
                return null;
            default:
                throw new NbdOptionException(OptionReplyType.ErrUnsupported, $"option {option} is not supported by this server");
        }
    }

    private NegotiatedExport? ChooseByExportName(byte[] data)
    {
        string name;
        try
        {
            name = NbdParser.ParseExportName(data);
        }
        catch (NbdOptionException e)
        {
            // EXPORT_NAME has no error reply: "the server MUST terminate the session".
            throw new NbdProtocolException($"EXPORT_NAME: {e.Message}");
        }

        if (!catalog.TryFind(name, peer.Identity, out string canonical, out var export) || Choose(canonical, export) is not { } chosen)
        {
            throw new NbdProtocolException($"EXPORT_NAME: no export named '{name}'");
        }

        NbdEncoder.WriteExportNameReply(writer, (ulong)export.Size, chosen.Flags, _noZeroes);
        return chosen;
    }

    private NegotiatedExport? DescribeExport(uint option, ExportInfoRequest request)
    {
        var export = FindExport(request.ExportName, out string canonical);
        NegotiatedExport? chosen = null;
        if ((NbdOption)option == NbdOption.Go)
        {
            chosen = Choose(canonical, export) ?? throw new NbdOptionException(OptionReplyType.ErrUnknown,
                $"export '{canonical}' was removed while this connection negotiated");
        }

        var flags = NegotiatedExport.TransmissionFlagsFor(export, _structuredReplies);
        NbdEncoder.WriteInfoExport(writer, option, (ulong)export.Size, flags);
        // Block sizes are always sent: clients that did not ask may ignore them.
        NbdEncoder.WriteInfoBlockSize(writer, option, options.BlockSizes);
        if (request.Requests.Contains(InfoType.Name))
        {
            NbdEncoder.WriteInfoString(writer, option, InfoType.Name, canonical);
        }

        if (request.Requests.Contains(InfoType.Description) && export.Description.Length > 0)
        {
            NbdEncoder.WriteInfoString(writer, option, InfoType.Description, export.Description);
        }

        NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
        return chosen;
    }

    private void HandleMetaContext(uint option, MetaContextRequest request)
    {
        bool listing = (NbdOption)option == NbdOption.ListMetaContext;
        if (!_structuredReplies)
        {
            throw new NbdOptionException(OptionReplyType.ErrInvalid, "meta contexts need structured replies to be negotiated first");
        }

        var export = FindExport(request.ExportName, out string canonical);
        var matched = listing && request.Queries.Count == 0
            ? MetaContexts.All(export)
            : request.Queries.SelectMany(q => MetaContexts.Match(q, listing, export));
        var distinct = matched.DistinctBy(c => c.Id).OrderBy(c => c.Id).ToList();
        foreach (var (id, name) in distinct)
        {
            // LIST's context ids are "reserved and SHOULD be set to zero".
            NbdEncoder.WriteMetaContextReply(writer, option, listing ? 0 : id, name);
        }

        if (!listing)
        {
            _metaExport = canonical;
            _metaContexts = distinct;
        }

        NbdEncoder.WriteOptionReply(writer, option, OptionReplyType.Ack);
    }

    private IExport FindExport(string name, out string canonical)
    {
        if (catalog.TryFind(name, peer.Identity, out canonical, out var export))
        {
            return export;
        }

        var known = catalog.VisibleTo(peer.Identity).Select(e => $"'{e.Key}'").Take(8);
        throw new NbdOptionException(OptionReplyType.ErrUnknown,
            $"no export named '{name}' (exports: {string.Join(", ", known)})");
    }

    /// <summary>Attaches to the export and settles the choice; null if the export is no longer in the catalog.</summary>
    private NegotiatedExport? Choose(string name, IExport export)
    {
        Attachment = catalog.Attach(name, export, peer.Identity);
        return Attachment is null ? null : new(name, export, _structuredReplies, _metaExport == name ? _metaContexts : []);
    }

    private void Reject(uint option, OptionReplyType reply, string message)
    {
        if (logThrottle.MayLog())
        {
            logger.OptionRejected(connectionId, (NbdOption)option, reply, message);
        }

        NbdEncoder.WriteOptionReply(writer, option, reply, message);
    }

    private static void RequireNoData(byte[] data, string option)
    {
        if (data.Length != 0)
        {
            throw new NbdOptionException(OptionReplyType.ErrInvalid, $"{option} takes no data, {data.Length} bytes were sent");
        }
    }

    private async ValueTask TryFlushAsync(CancellationToken cancel)
    {
        try
        {
            await writer.FlushAsync(cancel);
        }
        catch (IOException)
        {
            // The client may close right after ABORT without waiting for our ACK.
        }
    }
}
