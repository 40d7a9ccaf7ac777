using BlockOverlay.Io;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// A device that can hold writes to the journal region (blocks 2 to <paramref name="journalEnd"/>)
/// once closed, and then let them through or fail them; data and superblock writes always pass.
/// For tests that need a commit to be on its way to the journal while something else happens.
/// </summary>
internal sealed class JournalGate(MemoryDevice inner, long journalEnd) : IBlockDevice
{
    private const int Block = UpperStore.BlockSize;
    private TaskCompletionSource<Exception?> _open = Opened();

    /// <summary>Completes when a journal write is being held.</summary>
    public TaskCompletionSource Held { get; private set; } = NewHeld();

    public long Size => inner.Size;

    /// <summary>Holds the journal writes that come from now on.</summary>
    public void Close()
    {
        _open = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Held = NewHeld();
    }

    /// <summary>Lets the held writes (if not failed already) and later ones through.</summary>
    public void Open()
    {
        _open.TrySetResult(null);
        _open = Opened();
    }

    /// <summary>Fails the held writes (and later ones, until closed again) with <paramref name="failure"/>.</summary>
    public void Fail(Exception failure) => _open.TrySetResult(failure);

    public ValueTask ReadAsync(long offset, Memory<byte> buffer) => inner.ReadAsync(offset, buffer);

    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, bool durable)
    {
        if (offset >= 2 * Block && offset < journalEnd)
        {
            var open = _open;
            Held.TrySetResult();
            if (await open.Task is { } failure)
            {
                throw failure;
            }
        }

        await inner.WriteAsync(offset, data, durable);
    }

    public ValueTask FlushAsync() => inner.FlushAsync();

    public ValueTask DisposeAsync() => inner.DisposeAsync();

    private static TaskCompletionSource<Exception?> Opened()
    {
        var done = new TaskCompletionSource<Exception?>();
        done.SetResult(null);
        return done;
    }

    private static TaskCompletionSource NewHeld() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
