using BlockOverlay.Host.Live;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BlockOverlay.Host.Serving;

/// <summary>
/// The control socket next to the store, through which the CLI changes instances live.
/// Without it the server still serves (the CLI then says the store is in use), so a socket
/// that cannot be made is a warning, not a reason to stop. Stopping it waits for the
/// commands in progress, so none runs on a store being closed.
/// </summary>
internal sealed class ControlService(StoreService store, ILogger logger) : IHostedService
{
    private ControlServer? _control;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (store is not { Path: { } path, Host: { } host })
        {
            return Task.CompletedTask;
        }

        var control = new ControlServer(ControlServer.PathFor(path), host.RunAsync, logger);
        try
        {
            control.Start();
            HostLog.ControlListening(logger, control.Path);
            _control = control;
        }
        catch (Exception e) when (OperatorFailures.MessageFor(e) is { } reason)
        {
            HostLog.ControlUnavailable(logger, control.Path, reason);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_control is not null)
        {
            await _control.DisposeAsync();
            _control = null;
        }
    }
}
