using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// The transmission phase of one connection.
/// </summary>
/// <remarks>
/// One reader takes requests off the wire in order, validates each before any I/O and
/// starts it without waiting for earlier ones, so a slow request never holds up the
/// others. Each request, when it completes, queues its reply; one writer sends replies
/// in completion order (the protocol allows any order) and flushes the socket once per
/// batch. Memory is bounded by <see cref="InFlightBudget"/>: every request, refused ones
/// included, holds its share from before it is read until its reply has been written to
/// the socket, so past the budget the reader stops reading and the socket pushes back on
/// the client, whether it pipelines too much or never reads its replies. An export that paces
/// its clients (<see cref="IPacedExport"/>) is asked to admit each data request before its
/// payload is read, so its limits push back the same way. A WRITE's payload is read whole
/// into the receive buffers; an export that can (<see cref="IDirectWriteExport"/>) copies it
/// from there into its own memory, else it is copied into a request buffer for the export.
///
/// Time limits: a batch of replies the client does not take within the reply stall limit (plus
/// its bytes at the minimum rate) drops the connection, so unread replies cannot hold the
/// budgets for ever; with an idle limit, a connection that sends nothing while nothing of it is
/// in flight is closed. <see cref="EndReason"/> says which, for the connection's closing line.
///
/// Ending: on DISC, end of stream, a protocol error or server shutdown the reader stops;
/// requests already started always run to completion against the export (an
/// acknowledged-or-not write is never abandoned half-way), their replies are sent if the
/// client is still there, then the connection closes.
/// </remarks>
internal sealed partial class TransmissionSession
{
    private readonly MessageReader _reader;
    private readonly PipeWriter _writer;
    private readonly NegotiatedExport _negotiated;
    private readonly IExport _export;
    private readonly IPacedExport? _paced;
    private readonly IDirectWriteExport? _direct;
    private readonly NbdServerOptions _options;
    private readonly ILogger _logger;
    private readonly ServerCounters _counters;
    private readonly long _id;
    private readonly InFlightBudget _budget;
    private readonly RequestBuffers _buffers;
    private readonly LogThrottle _logThrottle;
    private readonly RequestRuns _runs;
    private readonly ReplyPool _replyPool;
    // When the reader began waiting for the next request header (Environment.TickCount64);
    // long.MaxValue while it handles one. With the budget's idle time it makes the idle limit.
    private long _awaitingSince = Environment.TickCount64;
    // Synchronous continuations: the writer, when idle, runs on the thread that queued the
    // reply instead of being woken on another one. That hand-off was the largest cost per
    // request (perf/RESULTS.md); measured side by side it gave about 15 % more IOPS.
    // Unbounded in count, bounded in bytes: each queued reply still holds its budget.
    private readonly Channel<(OutgoingReply Reply, long Cost)> _replies =
        Channel.CreateUnbounded<(OutgoingReply, long)>(new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = true });

    public TransmissionSession(MessageReader reader, PipeWriter writer, NegotiatedExport negotiated,
        NbdServerOptions options, ILogger logger, LogThrottle logThrottle, ServerCounters counters, RequestBuffers buffers, InFlightBudget? sharedBudget,
        long connectionId)
    {
        _logThrottle = logThrottle;
        _id = connectionId;
        _reader = reader;
        _writer = writer;
        _negotiated = negotiated;
        _export = negotiated.Export;
        _paced = _export as IPacedExport;
        _direct = _export as IDirectWriteExport;
        _options = options;
        _logger = logger;
        _counters = counters;
        _budget = new InFlightBudget(options.MaxInFlightBytes, sharedBudget);
        _buffers = buffers;
        _replyPool = new ReplyPool(buffers);
        _runs = new RequestRuns(PerformAsync, Failed, Queue, buffers);
    }

    /// <summary>Why the connection ended when a time limit ended it (idle, replies not taken); else null.</summary>
    public string? EndReason { get; private set; }

    public async Task RunAsync(CancellationToken shutdown)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(shutdown);
        // Cancelled when a flush overruns its deadline (or the server stops): the writer gives up.
        // Declared before the registration that cancels it, so disposed after it.
        using var flushDeadline = new CancellationTokenSource();
        using var stopsFlush = shutdown.Register(flushDeadline.Cancel);
        using var watching = new CancellationTokenSource();
        var writing = WriteRepliesAsync(stop, flushDeadline, shutdown);
        var watch = _options.IdleTimeout is { } idle ? WatchIdleAsync(idle, stop, watching.Token) : Task.CompletedTask;
        try
        {
            await ReadRequestsAsync(stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Server shutdown, the idle limit, or the writer found the client gone.
        }
        finally
        {
            await watching.CancelAsync();
            await watch;
            // Idle: every reply written (or dropped, if the client is gone or the server stops).
            await _budget.WhenIdleAsync();
            _replies.Writer.Complete();
            await writing;
            await DetachAsync();
        }
    }

    /// <summary>
    /// Ends the connection once it has sent nothing for <paramref name="limit"/> while nothing of
    /// it was in flight: the reader waiting for a header and the budget idle, since the later of the two.
    /// </summary>
    private async Task WatchIdleAsync(TimeSpan limit, CancellationTokenSource stop, CancellationToken ended)
    {
        long limitMs = (long)limit.TotalMilliseconds;
        long waitMs = limitMs;
        while (true)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(waitMs), ended);
            }
            catch (OperationCanceledException)
            {
                return; // the connection ended first
            }

            long idleMs = _budget.IdleSince() is { } since
                ? Environment.TickCount64 - Math.Max(since, Volatile.Read(ref _awaitingSince))
                : 0;
            if (idleMs >= limitMs)
            {
                EndReason = $"closed: nothing sent for the idle limit of {limit.TotalSeconds:0.###} s";
                _counters.RecordIdleTimeout();
                await stop.CancelAsync();
                return;
            }

            waitMs = Math.Max(limitMs - Math.Max(idleMs, 0), 1);
        }
    }

    /// <summary>Tells the export this client is gone, so it writes back what the client left dirty.</summary>
    private async Task DetachAsync()
    {
        try
        {
            await _export.ClientDetachedAsync();
        }
#pragma warning disable CA1031 // Classified below: a bug is logged as one, not taken for a failed write-back.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // Nobody is left to tell: the data stays in the export, which tries again when it closes.
            if (ExportFailures.Classify(e) is null)
            {
                _logger.DetachCrashed(_id, e);
            }
            else
            {
                _logger.DetachFailed(_id, e.Message);
            }
        }
    }

    private async Task ReadRequestsAsync(CancellationToken cancel)
    {
        while (true)
        {
            Volatile.Write(ref _awaitingSince, Environment.TickCount64);
            var (request, ended) = await _reader.ReadAsync<NbdRequest>(NbdParser.TryReadRequest, cancel);
            Volatile.Write(ref _awaitingSince, long.MaxValue);
            if (ended)
            {
                _logger.ConnectionEvent(_id, "client closed the connection without DISC");
                return;
            }

            _counters.RecordRequest(request.Command);
            if (request.Command == NbdCommand.Disconnect)
            {
                _logger.ConnectionEvent(_id, "client sent DISC");
                return;
            }

            var rejection = RequestValidator.Validate(request, _negotiated, _options.BlockSizes);
            if (rejection is { } refused)
            {
                if (request.HasPayload)
                {
                    // The payload is skipped as it arrives: never buffered by a length we refused.
                    await _reader.SkipAsync(request.Length, cancel);
                }

                await _budget.TakeAsync(CostOf(0));
                Reject(request, refused.Error, refused.Reason);
                continue;
            }

            if (_paced is not null && request.Command is NbdCommand.Read or NbdCommand.Write or NbdCommand.WriteZeroes or NbdCommand.Trim)
            {
                // Before the payload is read: a client held to its export's limits finds the
                // socket full, and no other connection waits for it (docs/DESIGN.md, "Limits and weights").
                await _paced.AdmitAsync(request.Command is NbdCommand.Read or NbdCommand.Write ? request.Length : 0, cancel);
            }

            long cost = CostOf(request.Command is NbdCommand.Read or NbdCommand.Write ? request.Length : 0);
            await _budget.TakeAsync(cost);
            byte[]? payload = null;
            if (request.HasPayload)
            {
                ReadOnlySequence<byte> received;
                try
                {
                    received = await _reader.ReadPayloadAsync((int)request.Length, _counters, _options.PayloadStallTimeout,
                        _options.MinTransferRate, cancel);
                }
                catch
                {
                    _budget.Return(cost);
                    throw;
                }

                bool started = TryStartDirectWrite(request, received, cost);
                if (!started)
                {
                    payload = _buffers.Rent((int)request.Length);
                    received.CopyTo(payload);
                }

                _reader.Consume(received);
                if (started)
                {
                    continue;
                }
            }

            // Started, not awaited: the next request is read while this one runs.
            _runs.Start(request, payload, cost);
        }
    }

    /// <summary>
    /// Offers a WRITE's payload, whole in the receive buffers, to an export that can copy it from
    /// there (<see cref="IDirectWriteExport"/>), so it is copied once, and starts its run. False
    /// when there is no such export or it declined: the caller copies the payload out.
    /// </summary>
    private bool TryStartDirectWrite(NbdRequest request, in ReadOnlySequence<byte> payload, long cost)
    {
        if (_direct is null)
        {
            return false;
        }

        bool taken;
        ValueTask completion;
        try
        {
            taken = _direct.TryWriteNow((long)request.Offset, payload, WriteFlagsOf(request.Flags), out completion);
        }
#pragma warning disable CA1031 // Classified when the run completes (Failed): a bug must not take the connection down.
        catch (Exception e)
#pragma warning restore CA1031
        {
            // The contract reports failures through the completion, so this is a bug; the write
            // counts as taken (its state is unknown) and fails with the bug's reply.
            taken = true;
#pragma warning disable CA2012 // Consumed once, by WrittenAsync below.
            completion = ValueTask.FromException(e);
#pragma warning restore CA2012
        }

        if (!taken)
        {
            return false;
        }

        _runs.Start(request, WrittenAsync(request, completion), cost);
        return true;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<OutgoingReply> PerformAsync(NbdRequest request, byte[]? payload)
    {
        long offset = (long)request.Offset;
        int length = (int)Math.Min(request.Length, int.MaxValue);
        switch (request.Command)
        {
            case NbdCommand.Read:
                return await ReadAsync(request, offset, length);
            case NbdCommand.Write:
                return await WrittenAsync(request, _export.WriteAsync(offset, payload.AsMemory(0, length), WriteFlagsOf(request.Flags)));
            case NbdCommand.Flush:
                await _export.FlushAsync();
                break;
            case NbdCommand.Trim:
                await _export.TrimAsync(offset, request.Length, WriteFlagsOf(request.Flags));
                break;
            case NbdCommand.WriteZeroes:
                await _export.ZeroAsync(offset, request.Length, ZeroFlagsOf(request.Flags));
                break;
            case NbdCommand.Cache:
                await _export.CacheAsync(offset, request.Length);
                break;
            case NbdCommand.BlockStatus:
                return await BlockStatusAsync(request, offset);
            default:
                throw new InvalidOperationException($"validated request has unexpected command {request.Command}");
        }

        return _replyPool.Success(request.Cookie);
    }

    /// <summary>The reply to a write once the export has it (<paramref name="write"/>: its work, either way it was taken).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<OutgoingReply> WrittenAsync(NbdRequest request, ValueTask write)
    {
        await write;
        _counters.RecordWritten((int)request.Length);
        return _replyPool.Success(request.Cookie);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<OutgoingReply> ReadAsync(NbdRequest request, long offset, int length)
    {
        byte[] buffer = _buffers.Rent(length);
        try
        {
            await _export.ReadAsync(offset, buffer.AsMemory(0, length));
        }
        catch
        {
            _buffers.Return(buffer);
            throw;
        }

        _counters.RecordRead(length);
        return _replyPool.Read(request.Cookie, request.Offset, buffer, length, _negotiated.StructuredReplies,
            (request.Flags & CommandFlags.DontFragment) != 0);
    }

    /// <summary>One chunk per selected context, in id order.</summary>
    private async ValueTask<OutgoingReply> BlockStatusAsync(NbdRequest request, long offset)
    {
        int maxExtents = request.Flags.HasFlag(CommandFlags.RequestOne) ? 1 : _options.MaxBlockStatusDescriptors;
        var chunks = new List<(uint, BlockStatusDescriptor[])>();
        foreach (var context in _negotiated.MetaContexts)
        {
            List<(long Length, uint Flags)> runs;
            if (context == MetaContexts.Layer && _export is ILayeredExport layered)
            {
                var layers = new List<LayerExtent>();
                await layered.GetLayersAsync(offset, request.Length, maxExtents, layers);
                runs = [.. layers.Select(l => (l.Length, (uint)l.Layer))];
            }
            else
            {
                var extents = new List<Extent>();
                await _export.GetAllocationAsync(offset, request.Length, maxExtents, extents);
                runs = [.. extents.Select(e => (e.Length, (uint)BlockStatusRuns.AllocationFlagsOf(e.State)))];
            }

            chunks.Add((context.Id, BlockStatusRuns.ToDescriptors(runs, request.Length, maxExtents)));
        }

        return new BlockStatusReply(request.Cookie, chunks);
    }

    private static WriteFlags WriteFlagsOf(CommandFlags flags) => (flags & CommandFlags.Fua) != 0 ? WriteFlags.Fua : WriteFlags.None;

    private static ZeroFlags ZeroFlagsOf(CommandFlags flags) =>
        (flags.HasFlag(CommandFlags.Fua) ? ZeroFlags.Fua : ZeroFlags.None) |
        (flags.HasFlag(CommandFlags.NoHole) ? ZeroFlags.NoHole : ZeroFlags.None) |
        (flags.HasFlag(CommandFlags.FastZero) ? ZeroFlags.FastZero : ZeroFlags.None);

    /// <summary>
    /// The reply to a request the export failed: its reason mapped to the wire, or, for a bug,
    /// EIO with the exception logged at Error with its stack (see <see cref="FailureMapping"/>).
    /// </summary>
    private StatusReply Failed(NbdRequest request, Exception e)
    {
        if (ExportFailures.Classify(e) is { } reason)
        {
            var error = FailureMapping.WireErrorOf(reason);
            if (_logThrottle.MayLog())
            {
                _logger.RequestFailed(_id, request, error, e.Message);
            }

            _counters.RecordFailed(error);
            return ErrorReply(request, error, e.Message);
        }

        _logger.RequestCrashed(_id, request, e); // a bug: always logged, never throttled
        _counters.RecordFailed(NbdError.IoError);
        return ErrorReply(request, NbdError.IoError, "internal server error");
    }

    private void Reject(NbdRequest request, NbdError error, string reason)
    {
        if (_logThrottle.MayLog())
        {
            _logger.RequestRejected(_id, request, error, reason);
        }

        _counters.RecordRejected(error);
        Queue(ErrorReply(request, error, reason), CostOf(0));
    }

    /// <summary>What a request holds of the budget: its data plus the overhead, at most all of it (so any request fits alone).</summary>
    private long CostOf(long dataBytes) => Math.Min(_options.RequestOverheadBytes + dataBytes, _options.MaxInFlightBytes);

    private StatusReply ErrorReply(NbdRequest request, NbdError error, string message) =>
        new(request.Cookie, error, message, _negotiated.StructuredReplies);
}
