using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The server's lifetime (in place of the generic host's console lifetime, which would log
/// its own lines): SIGTERM and SIGINT are caught from before the first service starts, so
/// one that arrives while the store opens or the listeners start does not kill the process
/// (exit 143, the store left unclean). The first signal asks for a clean stop, carried out
/// once every service is up; a second one exits at once (130).
/// </summary>
internal sealed class SignalLifetime(IHostApplicationLifetime application) : IHostLifetime, IDisposable
{
    private readonly TaskCompletionSource _signalled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _lock = new();
    private PosixSignalRegistration? _term;
    private PosixSignalRegistration? _interrupt;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        }

        // Not while starting: a stop requested then would cancel the start half way, and the
        // services started so far would be stopped without the rest (the store opened, no
        // listeners). Up first, then stopped in order.
        application.ApplicationStarted.Register(() => _signalled.Task.ContinueWith(_ => application.StopApplication(), TaskScheduler.Default));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Hands the signals back to the runtime (serving stdio: from then on a signal ends the
    /// process as it would any command). True if a stop was asked for before.
    /// </summary>
    public bool Release()
    {
        Dispose();
        return _signalled.Task.IsCompleted;
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _term?.Dispose();
            _interrupt?.Dispose();
            _term = _interrupt = null;
        }
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (!_signalled.TrySetResult())
        {
            Environment.Exit(130);
        }
    }
}
