using System.Runtime.InteropServices;

namespace BlockOverlay.Host.Bases;

/// <summary>
/// While an import runs, the first SIGINT (Ctrl-C), SIGTERM or SIGHUP cancels it instead of
/// killing the process, so that it deletes what it wrote and says so, rather than leaving a
/// half-written file behind. A second signal is not held back: it ends the process as
/// usual, for when the import is stuck in a read from a server that no longer answers.
/// </summary>
internal sealed class InterruptSignals : IDisposable
{
    private static readonly PosixSignal[] Signals = [PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP];

    private readonly CancellationTokenSource _cancel;
    private readonly PosixSignalRegistration[] _registrations;
    private PosixSignal? _received;

    /// <summary>Starts catching the signals; <paramref name="outer"/> cancels as well.</summary>
    public InterruptSignals(CancellationToken outer)
    {
        _cancel = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = [.. Signals.Select(signal => PosixSignalRegistration.Create(signal, OnSignal))];
    }

    /// <summary>Cancelled by the first signal (or by the outer token).</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>The first signal caught, if any.</summary>
    public PosixSignal? Received => _received;

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }

        _cancel.Dispose();
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = _received is null;
        _received ??= context.Signal;
        _cancel.Cancel();
    }
}
