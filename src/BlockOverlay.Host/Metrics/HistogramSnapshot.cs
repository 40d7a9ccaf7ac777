namespace BlockOverlay.Host.Metrics;

/// <summary>
/// One histogram's state at scrape time, in the shape a recorder naturally keeps:
/// per-bucket (not cumulative) counts, one per finite upper bound plus a last one for the
/// observations above the highest bound, and the sum of all observations.
/// <para>
/// The total count is not given but derived from the buckets, so the <c>le="+Inf"</c>
/// bucket and <c>_count</c> can never disagree, even when the recorder's counters were
/// read one by one while observations kept arriving. The lists are copied: a snapshot
/// does not change after it is made.
/// </para>
/// </summary>
internal sealed class HistogramSnapshot
{
    public HistogramSnapshot(IReadOnlyList<double> upperBounds, IReadOnlyList<long> bucketCounts, double sum)
    {
        ArgumentNullException.ThrowIfNull(upperBounds);
        ArgumentNullException.ThrowIfNull(bucketCounts);
        for (int i = 0; i < upperBounds.Count; i++)
        {
            if (!double.IsFinite(upperBounds[i]))
            {
                throw new ArgumentException($"upper bound {upperBounds[i]} is not finite (the +Inf bucket is implied)", nameof(upperBounds));
            }

            if (i > 0 && upperBounds[i] <= upperBounds[i - 1])
            {
                throw new ArgumentException("upper bounds must be strictly increasing", nameof(upperBounds));
            }
        }

        if (bucketCounts.Count != upperBounds.Count + 1)
        {
            throw new ArgumentException(
                $"{bucketCounts.Count} bucket counts for {upperBounds.Count} upper bounds: expected one per bound plus one above the last",
                nameof(bucketCounts));
        }

        if (bucketCounts.Any(count => count < 0))
        {
            throw new ArgumentException("bucket counts cannot be negative", nameof(bucketCounts));
        }

        UpperBounds = [.. upperBounds];
        BucketCounts = [.. bucketCounts];
        Sum = sum;
        Count = BucketCounts.Sum();
    }

    /// <summary>The finite upper bounds, strictly increasing.</summary>
    public IReadOnlyList<double> UpperBounds { get; }

    /// <summary>Observations in each bucket alone; the last entry counts those above the highest bound.</summary>
    public IReadOnlyList<long> BucketCounts { get; }

    public double Sum { get; }

    /// <summary>Every observation: the sum of the bucket counts.</summary>
    public long Count { get; }
}
