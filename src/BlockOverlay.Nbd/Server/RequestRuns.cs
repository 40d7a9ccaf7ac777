using System.Runtime.CompilerServices;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>
/// Runs a connection's requests, each from its start to its reply queued, on objects the
/// connection reuses: an async method started per request and not awaited cost a state machine
/// box each time it waited on I/O. Several runs of one connection are in flight at once
/// (pipelining), each its own object. The request's budget share is only carried through to
/// <paramref name="queue"/>, which hands it on; a payload goes back to <paramref name="buffers"/>
/// when its request is done.
/// </summary>
/// <param name="perform">Runs a request against the export; its reply.</param>
/// <param name="failed">The reply to a request whose run threw (classified there; a bug must not take the connection down).</param>
/// <param name="queue">Takes a finished request's reply and its budget share.</param>
internal sealed class RequestRuns(
    Func<NbdRequest, byte[]?, ValueTask<OutgoingReply>> perform,
    Func<NbdRequest, Exception, OutgoingReply> failed,
    Action<OutgoingReply, long> queue,
    RequestBuffers buffers)
{
    private readonly Func<NbdRequest, byte[]?, ValueTask<OutgoingReply>> _perform = perform;
    private readonly Func<NbdRequest, Exception, OutgoingReply> _failed = failed;
    private readonly Action<OutgoingReply, long> _queue = queue;
    private readonly RequestBuffers _buffers = buffers;
    private readonly Stack<Run> _idle = new(); // its own lock

    public void Start(NbdRequest request, byte[]? payload, long cost) => Rent().Start(request, payload, cost, _perform(request, payload));

    /// <summary>A request the export has already begun (a write it took straight from the receive buffers): its run on to its reply.</summary>
    public void Start(NbdRequest request, ValueTask<OutgoingReply> work, long cost) => Rent().Start(request, null, cost, work);

    private Run Rent()
    {
        lock (_idle)
        {
            if (_idle.TryPop(out var run))
            {
                return run;
            }
        }

        return new Run(this);
    }

    private sealed class Run
    {
        private readonly RequestRuns _runs;
        private readonly Action _completed;
        private ValueTaskAwaiter<OutgoingReply> _work;
        private NbdRequest _request;
        private byte[]? _payload;
        private long _cost;

        public Run(RequestRuns runs)
        {
            _runs = runs;
            _completed = Complete;
        }

        public void Start(NbdRequest request, byte[]? payload, long cost, ValueTask<OutgoingReply> work)
        {
            (_request, _payload, _cost) = (request, payload, cost);
            _work = work.GetAwaiter(); // consumed once: GetResult in Complete ends it
            if (_work.IsCompleted)
            {
                Complete();
            }
            else
            {
                _work.UnsafeOnCompleted(_completed);
            }
        }

        private void Complete()
        {
            OutgoingReply reply;
            try
            {
                reply = _work.GetResult();
            }
#pragma warning disable CA1031 // Every failure is classified by `failed`; a bug must not take the connection down.
            catch (Exception e)
#pragma warning restore CA1031
            {
                reply = _runs._failed(_request, e);
            }
            finally
            {
                if (_payload is not null)
                {
                    _runs._buffers.Return(_payload);
                }
            }

            var (runs, cost) = (_runs, _cost);
            (_work, _request, _payload, _cost) = (default, default, null, 0);
            lock (runs._idle)
            {
                runs._idle.Push(this);
            }

            runs._queue(reply, cost);
        }
    }
}
