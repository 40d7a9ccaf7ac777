using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The reply side of a connection's transmission (see <see cref="TransmissionSession"/>'s remarks):
/// replies queued as requests complete, written and flushed in batches, each one's budget share
/// given back once it is on the socket.
/// </summary>
internal sealed partial class TransmissionSession
{
    /// <summary>Hands a reply to the writer, which gives its cost back once it is written.</summary>
    private void Queue(OutgoingReply reply, long cost)
    {
        if (!_replies.Writer.TryWrite((reply, cost)))
        {
            reply.Release();
            _budget.Return(cost);
        }
    }

    /// <summary>
    /// Writes replies as they come, flushing the socket once per batch (or every 256 KiB), and
    /// gives each reply's cost back once a flush has written it. A flush the client does not
    /// take within the reply stall limit plus its bytes at the minimum rate, or that blocks
    /// while the server shuts down, gives up: the replies are dropped and the connection ends.
    /// </summary>
    private async Task WriteRepliesAsync(CancellationTokenSource stop, CancellationTokenSource flushDeadline, CancellationToken shutdown)
    {
        var replies = _replies.Reader;
        const int flushThreshold = 256 * 1024;
        long unflushedCost = 0;
        try
        {
            // Not cancelled by shutdown: requests in flight still complete and their replies go out.
            while (await replies.WaitToReadAsync(CancellationToken.None))
            {
                while (replies.TryRead(out var queued))
                {
                    unflushedCost += queued.Cost;
                    try
                    {
                        queued.Reply.WriteTo(_writer);
                    }
                    finally
                    {
                        queued.Reply.Release();
                    }

                    if (_writer.CanGetUnflushedBytes && _writer.UnflushedBytes >= flushThreshold)
                    {
                        await FlushAsync(flushDeadline);
                        (unflushedCost, var written) = (0, unflushedCost);
                        _budget.Return(written);
                    }
                }

                await FlushAsync(flushDeadline);
                (unflushedCost, var flushed) = (0, unflushedCost);
                _budget.Return(flushed);
            }
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            // The server stops and this client is not taking its replies: drop them.
            _logger.ConnectionEvent(_id, "server stopping; dropping replies the client is not reading");
            await DropRepliesAsync(stop, unflushedCost);
        }
        catch (OperationCanceledException) when (flushDeadline.IsCancellationRequested)
        {
            // The client is not taking its replies (DESIGN.md, invariant 7): what they hold goes back.
            EndReason = $"dropped: its replies were not taken within the reply stall limit of {_options.ReplyStallTimeout.TotalSeconds:0.###} s " +
                        $"(plus their size at {_options.MinTransferRate} bytes/s)";
            _counters.RecordStall();
            await DropRepliesAsync(stop, unflushedCost);
        }
#pragma warning disable CA1031 // Either way the connection ends; a bug is logged as one first.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // The client is gone (or a bug stopped the replies): stop reading; requests in
            // flight still complete.
            if (FailureMapping.IsPeerGone(e))
            {
                _logger.ConnectionEvent(_id, "cannot send replies: " + e.Message);
            }
            else
            {
                _logger.ConnectionCrashed(_id, e);
            }

            await DropRepliesAsync(stop, unflushedCost);
        }
    }

    /// <summary>Flushes the pipe to the socket under its deadline (the stall limit plus its bytes at the minimum rate).</summary>
    private async ValueTask FlushAsync(CancellationTokenSource deadline)
    {
        long bytes = _writer.CanGetUnflushedBytes ? _writer.UnflushedBytes : 0;
        deadline.CancelAfter(_options.ReplyStallTimeout + TimeSpan.FromSeconds((double)bytes / _options.MinTransferRate));
        await _writer.FlushAsync(deadline.Token);
        deadline.TryReset();
    }

    /// <summary>Stops the reader and releases every reply still to come, giving back what each held.</summary>
    private async Task DropRepliesAsync(CancellationTokenSource stop, long unflushedCost)
    {
        await stop.CancelAsync();
        _budget.Return(unflushedCost);
        await foreach (var (reply, cost) in _replies.Reader.ReadAllAsync())
        {
            reply.Release();
            _budget.Return(cost);
        }
    }
}
