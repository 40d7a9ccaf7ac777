using BlockOverlay.Host.Live;

namespace BlockOverlay.Host.Tests.Live;

/// <summary>Name locks: one holder per name, different names side by side, nothing left behind.</summary>
[TestFixture]
public sealed class NameLocksTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Test]
    public async Task Commands_on_one_name_take_turns_and_on_others_do_not_wait()
    {
        var locks = new NameLocks();
        var first = await locks.LockAsync(["a"]);

        var same = locks.LockAsync(["a"]);
        var other = await locks.LockAsync(["b"]).WaitAsync(Wait);
        Assert.That(same.IsCompleted, Is.False, "a second holder of 'a' waits");

        first.Dispose();
        (await same.WaitAsync(Wait)).Dispose();
        other.Dispose();
        Assert.That(locks.Count, Is.Zero, "entries go with their last user");
    }

    [Test]
    public async Task Two_commands_sharing_two_names_in_either_order_do_not_deadlock()
    {
        var locks = new NameLocks();
        for (int round = 0; round < 200; round++)
        {
            var one = Task.Run(async () => (await locks.LockAsync(["x", "y"])).Dispose());
            var two = Task.Run(async () => (await locks.LockAsync(["y", "x", "y"])).Dispose());
            await Task.WhenAll(one, two).WaitAsync(Wait);
        }

        Assert.That(locks.Count, Is.Zero);
    }

    [Test]
    public async Task A_clone_waits_until_it_holds_both_its_names()
    {
        var locks = new NameLocks();
        var target = await locks.LockAsync(["new"]);
        var clone = locks.LockAsync(["src", "new"]);

        await Task.Delay(50);
        Assert.That(clone.IsCompleted, Is.False, "the clone waits for 'new'");
        (await locks.LockAsync(["src"]).WaitAsync(Wait)).Dispose();   // a waiter holds no name it has not reached

        target.Dispose();
        var both = await clone.WaitAsync(Wait);
        var onSource = locks.LockAsync(["src"]);
        await Task.Delay(50);
        Assert.That(onSource.IsCompleted, Is.False, "the clone holds 'src' now");
        both.Dispose();
        (await onSource.WaitAsync(Wait)).Dispose();
        Assert.That(locks.Count, Is.Zero);
    }
}
