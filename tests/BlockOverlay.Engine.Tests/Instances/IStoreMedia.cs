using BlockOverlay.Io;

namespace BlockOverlay.Engine.Tests.Instances;

/// <summary>Where the store lives, and what is left of it after a kill or a power cut.</summary>
internal interface IStoreMedia : IAsyncDisposable
{
    IBlockDevice Device { get; }

    /// <summary>A new device holding what survives if the process (or the power) died now.</summary>
    IBlockDevice Kill();
}
