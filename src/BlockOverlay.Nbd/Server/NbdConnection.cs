using System.IO.Pipelines;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// One client connection from greeting to close, over any pair of streams (a socket, or
/// stdin/stdout). Whatever happens on it stays on it: errors end this connection only.
/// </summary>
/// <remarks>
/// The pipes read and write a <see cref="ConnectionStream"/>, under which STARTTLS puts TLS;
/// the pipes themselves stay the same from the greeting to the close.
/// </remarks>
internal static class NbdConnection
{
    /// <summary>Socket reads of up to 256 KiB keep large writes to a few system calls.</summary>
    private static readonly StreamPipeReaderOptions ReaderOptions = new(bufferSize: 256 * 1024, minimumReadSize: 64 * 1024);

    public static async Task RunAsync(Stream input, Stream output, PeerIdentity peer, ExportCatalog catalog, NbdServerOptions options,
        ILogger logger, ServerCounters counters, RequestBuffers buffers, InFlightBudget? sharedBudget, long connectionId,
        CancellationToken shutdown)
    {
        var stream = new ConnectionStream(input, output);
        var pipeReader = PipeReader.Create(stream, ReaderOptions);
        var pipeWriter = PipeWriter.Create(stream);
        var reader = new MessageReader(pipeReader);
        string outcome = "closed";
        var logThrottle = LogThrottle.PerConnection(logger, connectionId);
        var negotiation = new OptionNegotiation(reader, pipeWriter, stream, new ConnectionPeer(peer), catalog, options, logger, logThrottle, connectionId);
        using var handshake = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        handshake.CancelAfter(options.HandshakeTimeout);
        try
        {
            var chosen = await negotiation.RunAsync(handshake.Token);
            if (chosen is null)
            {
                outcome = "closed during negotiation";
                return;
            }

            var attachment = negotiation.Attachment!;
            logger.Attached(connectionId, chosen.Name, (ushort)chosen.Flags, chosen.StructuredReplies);
            using var ending = CancellationTokenSource.CreateLinkedTokenSource(shutdown, attachment.Ending);
            var session = new TransmissionSession(reader, pipeWriter, chosen, options, logger, logThrottle, counters, buffers, sharedBudget, connectionId);
            await session.RunAsync(ending.Token);
            outcome = session.EndReason ?? (attachment.Revoked
                ? $"closed: the access rules of '{chosen.Name}' changed and no longer allow {attachment.Peer}"
                : outcome);
            await stream.EndTlsAsync();
        }
        catch (OperationCanceledException) when (handshake.IsCancellationRequested && !shutdown.IsCancellationRequested &&
                                                  negotiation.Attachment is null)
        {
            outcome = $"closed: no export chosen within the handshake limit of {options.HandshakeTimeout.TotalSeconds:0.###} s";
            counters.RecordHandshakeTimeout();
        }
        catch (NbdProtocolException e)
        {
            outcome = "dropped for a protocol violation";
            logger.ProtocolViolation(connectionId, e.Message);
        }
        catch (Exception e) when (e is OperationCanceledException || FailureMapping.IsPeerGone(e))
        {
            outcome = $"ended: {e.Message}";
        }
#pragma warning disable CA1031 // Last resort: a bug must end this connection only, and be seen.
        catch (Exception e)
#pragma warning restore CA1031
        {
            outcome = "ended by an internal error";
            logger.ConnectionCrashed(connectionId, e);
        }
        finally
        {
            negotiation.Attachment?.Dispose();
            await CloseAsync(pipeReader, pipeWriter);
            logThrottle.Flush();
            logger.ConnectionClosed(connectionId, outcome);
        }
    }

    /// <summary>Completes both pipes; a peer that already hung up makes the final flush fail, which is fine.</summary>
    private static async ValueTask CloseAsync(PipeReader reader, PipeWriter writer)
    {
        await reader.CompleteAsync();
        try
        {
            await writer.CompleteAsync();
        }
        catch (Exception e) when (FailureMapping.IsPeerGone(e))
        {
            // Nothing left to tell a client that is gone.
        }
    }
}
