using BlockOverlay.Engine.Qos;

namespace BlockOverlay.Engine.Tests.Qos;

/// <summary>
/// The background write-back's shares among throttled instances: bytes served follow the
/// weights, equal weights take turns, and a contender that was away brings back no credit.
/// </summary>
public class WeightedTurnsTests
{
    private sealed record Tenant(string Name, int Weight);

    private static Dictionary<Tenant, long> Serve(WeightedTurns<Tenant> turns, IReadOnlyList<Tenant> contenders, int batches, long batchBytes)
    {
        var served = contenders.ToDictionary(t => t, _ => 0L);
        for (int i = 0; i < batches; i++)
        {
            var next = turns.Next(contenders)!;
            turns.Served(next, batchBytes, next.Weight);
            served[next] += batchBytes;
        }

        return served;
    }

    [Test]
    public void Bytes_served_follow_the_weights()
    {
        Tenant heavy = new("heavy", 200), light = new("light", 100);
        var served = Serve(new WeightedTurns<Tenant>(), [light, heavy], 300, 1 << 20);
        Assert.That(served[heavy], Is.EqualTo(200L << 20));
        Assert.That(served[light], Is.EqualTo(100L << 20));
    }

    [Test]
    public void Equal_weights_take_turns_starting_with_the_first_listed()
    {
        Tenant a = new("a", 100), b = new("b", 100);
        var turns = new WeightedTurns<Tenant>();
        var order = Enumerable.Range(0, 4).Select(_ =>
        {
            var next = turns.Next([a, b])!;
            turns.Served(next, 4096, next.Weight);
            return next.Name;
        });
        Assert.That(order, Is.EqualTo(new[] { "a", "b", "a", "b" }));
    }

    [Test]
    public void A_contender_that_was_away_brings_back_no_credit()
    {
        Tenant steady = new("steady", 100), away = new("away", 100);
        var turns = new WeightedTurns<Tenant>();
        Serve(turns, [steady], 1000, 1 << 20);
        var served = Serve(turns, [away, steady], 10, 1 << 20);
        Assert.That(served[away], Is.InRange(5L << 20, 6L << 20),
            "the returning one shares from now on (at most one turn ahead); it does not get 1000 turns in a row");
    }

    [Test]
    public void No_contender_no_turn() => Assert.That(new WeightedTurns<Tenant>().Next([]), Is.Null);
}
