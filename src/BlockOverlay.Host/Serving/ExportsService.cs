using BlockOverlay.Engine.Exports;
using BlockOverlay.Exports;
using BlockOverlay.Nbd.Server;
using Microsoft.Extensions.Hosting;

namespace BlockOverlay.Host.Serving;

/// <summary>The plain exports (memory, file) given to serve: opened into the catalog, closed in the order opened.</summary>
internal sealed class ExportsService(IReadOnlyList<ExportSpec> specs, ExportCatalog catalog) : IHostedService
{
    private readonly List<IExport> _opened = [];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var spec in specs)
        {
            var export = Open(spec);
            _opened.Add(export);
            catalog.Add(spec.Name, export);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        foreach (var export in _opened)
        {
            await export.DisposeAsync();
        }

        _opened.Clear();
    }

    private static IExport Open(ExportSpec spec)
    {
        try
        {
            return spec.Open();
        }
        catch (IOException e) when (spec is FileExportSpec file)
        {
            // The usual cause is the image's lock: it is exported twice, or another server has it.
            throw new IOException($"export '{spec.Name}': cannot open {file.Path}: {e.Message} " +
                                  "(a writable image can be served by one export of one server at a time)", e);
        }
    }
}
