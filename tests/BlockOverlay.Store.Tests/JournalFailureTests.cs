using BlockOverlay.Io;
using BlockOverlay.Store.Format;

namespace BlockOverlay.Store.Tests;

/// <summary>
/// A journal batch that fails hands its failure, as it is, to every commit in it: a bug is
/// not taken for a failed batch of some other kind, and no commit is left waiting.
/// </summary>
public class JournalFailureTests
{
    private const int Block = UpperStore.BlockSize;

    [Test]
    public async Task Every_commit_of_a_batch_that_hit_a_bug_fails_with_that_bug()
    {
        var memory = new MemoryDevice(16 << 20);
        await UpperStore.CreateAsync(memory, new StoreCreateOptions { JournalBlocks = 64 });
        var device = new JournalGate(memory, journalEnd: (2 + 64) * (long)Block);
        await using var store = await UpperStore.OpenAsync(device);
        var instances = new List<StoreInstance>();
        foreach (string name in new[] { "a", "b", "c" })
        {
            var instance = await store.CreateInstanceAsync(name, 64 * Block, null);
            await store.WriteAsync(instance, 0, new byte[Block]);
            instances.Add(instance);
        }

        device.Close();
        var first = store.CommitAsync(instances[0]);
        await device.Held.Task;
        // These two queue behind the held batch and go out together in the next one.
        var others = instances.Skip(1).Select(i => store.CommitAsync(i)).ToList();
        await Task.Delay(100);
        device.Fail(new InvalidOperationException("a bug below the journal"));

        var all = Task.WhenAll([first, .. others]);
        Assert.That(await Task.WhenAny(all, Task.Delay(TimeSpan.FromSeconds(10))), Is.SameAs(all), "a commit was left waiting");
        Assert.Multiple(() =>
        {
            foreach (var commit in new[] { first }.Concat(others))
            {
                Assert.That(commit.Exception?.InnerException, Is.TypeOf<InvalidOperationException>());
            }
        });
    }
}
