namespace BlockOverlay.Store.Journal;

/// <summary>
/// A batch did not fit in the journal: nothing of its commits was written. The caller decides
/// whether to checkpoint (which moves the tail) and try again.
/// </summary>
internal sealed class JournalFullException(long needed, long free, long tailMoves)
    : IOException($"journal full: {needed} blocks needed, {free} free")
{
    /// <summary><see cref="MetadataJournal.TailMoves"/> when the journal was found full.</summary>
    public long TailMoves { get; } = tailMoves;
}
