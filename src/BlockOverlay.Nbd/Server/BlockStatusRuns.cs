using BlockOverlay.Exports;
using BlockOverlay.Nbd.Protocol;

namespace BlockOverlay.Nbd.Server;

/// <summary>An export's extents as BLOCK_STATUS descriptors: what TransmissionSession answers with.</summary>
internal static class BlockStatusRuns
{
    /// <summary>
    /// Converts extents to wire descriptors, enforcing what the protocol demands whatever
    /// the export returned: at least one, none of zero length, none past the request.
    /// </summary>
    internal static BlockStatusDescriptor[] ToDescriptors(List<(long Length, uint Flags)> runs, uint requested, int maxExtents)
    {
        var descriptors = new List<BlockStatusDescriptor>(Math.Min(runs.Count, maxExtents));
        long left = requested;
        foreach (var (extentLength, flags) in runs)
        {
            if (left == 0 || descriptors.Count == maxExtents)
            {
                break;
            }

            if (extentLength <= 0)
            {
                throw new InvalidOperationException($"export reported an extent of length {extentLength}");
            }

            uint length = (uint)Math.Min(extentLength, left);
            descriptors.Add(new BlockStatusDescriptor(length, flags));
            left -= length;
        }

        return descriptors.Count > 0
            ? descriptors.ToArray()
            : throw new InvalidOperationException("export reported no extents");
    }

    /// <summary>The base:allocation flags of an extent's state.</summary>
    internal static AllocationFlags AllocationFlagsOf(ExtentState state) =>
        (state.HasFlag(ExtentState.Hole) ? AllocationFlags.Hole : AllocationFlags.None) |
        (state.HasFlag(ExtentState.Zero) ? AllocationFlags.Zero : AllocationFlags.None);
}
