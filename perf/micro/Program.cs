using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Perfolizer.Metrology;

// make micro: BenchmarkDotNet's own command line (--filter, --job, --inProcess, --exporters ...).
// Allocations in bytes, not KB: the figure to watch is small and exact.
var config = DefaultConfig.Instance.WithSummaryStyle(SummaryStyle.Default.WithSizeUnit(SizeUnit.B));
BenchmarkSwitcher.FromAssembly(typeof(BlockOverlay.Micro.RequestBenchmarks).Assembly).Run(args, config);
